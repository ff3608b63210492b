"""The template: cfn-lint and checkov clean for every variant, least-privilege IAM, and the
settings each switch of ``deploy:`` must produce."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from batchdrop.deploy.settings import deploy_settings
from batchdrop.deploy.template import build_template, statements, to_yaml
from batchdrop.errors import ConfigError
from batchdrop.tables.dynamodb_ledger import ledger_table_spec

from .configs import VARIANTS, make_config

# checkov pins an old boto3, so `make test` keeps it in a virtualenv of its own (.venv-checkov)
CHECKOV = Path(
    os.environ.get("CHECKOV")
    or Path(__file__).resolve().parents[2] / ".venv-checkov" / "bin" / "checkov"
)


def template_for(tmp: Path, deploy: dict[str, Any] | None = None, **changes: Any) -> dict:
    config = make_config(tmp, deploy, **changes)
    return build_template(config, deploy_settings(config))


def of_type(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def refs(node: Any) -> set[str]:
    """Logical ids a piece of template refers to (Ref, GetAtt, ${...} in Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0])
            elif key == "Fn::Sub" and isinstance(value, str):
                found |= set(re.findall(r"\$\{([A-Za-z0-9]+)[}.]", value))
            else:
                found |= refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= refs(item)
    return found


def actions(template: dict, role: str = "Role") -> set[str]:
    return {a for r, st in statements(template) if r == role for a in st["Action"]}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cfn_lint_reports_nothing(tmp_path: Path, variant: str) -> None:
    body = to_yaml(template_for(tmp_path, VARIANTS[variant]))
    matches = lint(body, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [str(m) for m in matches] == []


def test_checkov_passes_every_variant_and_every_skip_has_a_reason(tmp_path: Path) -> None:
    out = tmp_path / "templates"
    out.mkdir()
    for name, deploy in VARIANTS.items():
        (tmp_path / name).mkdir()
        (out / f"{name}.yaml").write_text(to_yaml(template_for(tmp_path / name, deploy)))
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    done = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(out),
            "--framework",
            "cloudformation",
            "--output",
            "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        (c["check_id"], c["resource"], c["file_path"])
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert failed == []
    assert done.returncode == 0
    passed = sum(len(r["results"]["passed_checks"]) for r in reports)
    assert passed > 100
    for r in reports:
        for c in r["results"]["skipped_checks"]:
            assert len(c["check_result"].get("suppress_comment", "")) > 20, c["check_id"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_iam_has_no_wildcard_action_and_no_wildcard_resource_but_xray(
    tmp_path: Path, variant: str
) -> None:
    for role, st in statements(template_for(tmp_path, VARIANTS[variant])):
        assert st["Effect"] == "Allow"
        for action in st["Action"]:
            assert "*" not in action, (role, action)
        for resource in st["Resource"]:
            if resource == "*":  # X-Ray supports no resource-level permissions
                assert set(st["Action"]) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
            else:
                # objects under a bucket, indexes; the API's rejected-rows reports
                assert "*" not in json.dumps(resource) or json.dumps(resource).endswith(
                    ('*"]]}', '"*"]]}', '/*.rejected.csv"]]}')
                ), (role, resource)


RUNTIME_ACTIONS = {
    "s3:GetObject",
    "s3:GetObjectTagging",
    "s3:ListBucket",
    "s3:PutObject",
    "s3:GetBucketVersioning",
    "s3:PutObjectTagging",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "dynamodb:BatchWriteItem",
    "dynamodb:GetItem",  # the ledger's
    "dynamodb:Query",  # the ledger's
    "dynamodb:DescribeTable",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "sns:Publish",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_dependencies_have_no_cycle(tmp_path: Path, variant: str) -> None:
    res = template_for(tmp_path, VARIANTS[variant])["Resources"]
    graph = {name: (refs(r) | set(r.get("DependsOn", []))) & set(res) for name, r in res.items()}
    done: set[str] = set()
    while len(done) < len(graph):
        ready = {n for n, deps in graph.items() if n not in done and deps <= done}
        assert ready, f"cycle among {sorted(set(graph) - done)}"
        done |= ready


def by_sid_of(template: dict[str, Any]) -> dict[str, Any]:
    return {st["Sid"]: st for _, st in statements(template)}


def test_the_loader_may_call_exactly_what_the_runtime_calls(tmp_path: Path) -> None:
    queue = template_for(tmp_path)  # the config has a webhook: its URL is read from SSM
    assert actions(queue) == RUNTIME_ACTIONS | {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",  # a paused file queued again
        "ssm:GetParameter",
    }
    assert by_sid_of(queue)["RequeuePausedFile"]["Resource"] == [{"Fn::GetAtt": ["Queue", "Arn"]}]
    direct = template_for(tmp_path, {"trigger": "direct"}, notify=["console"])
    assert actions(direct) == RUNTIME_ACTIONS | {"sqs:SendMessage"}
    versioned = template_for(tmp_path, {"versioning": True})
    assert actions(versioned) - actions(queue) == {
        "s3:GetObjectVersion",
        "s3:GetObjectVersionTagging",
        "s3:DeleteObjectVersion",
        "s3:ListBucketVersions",
    }
    by_sid = by_sid_of(queue)
    # the loader only writes the data table (reads are the API's), the ledger never in batches
    assert by_sid["WriteTable"]["Action"] == ["dynamodb:BatchWriteItem", "dynamodb:DescribeTable"]
    assert by_sid["WriteTable"]["Resource"] == [{"Fn::GetAtt": ["Table", "Arn"]}]
    assert "dynamodb:BatchWriteItem" not in by_sid["Ledger"]["Action"]
    # reads and deletes only below the inbound prefix; lists only that prefix
    inbound = json.dumps(by_sid["ReadAndRemoveInbound"]["Resource"])
    assert "/incoming/*" in inbound and "inbound-${AWS::AccountId}" in inbound
    assert by_sid["ListInbound"]["Condition"] == {"StringLike": {"s3:prefix": ["incoming/*"]}}


def test_the_api_role_only_reads(tmp_path: Path) -> None:
    t = template_for(tmp_path, {"api": True})
    assert actions(t, "ApiRole") == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "s3:GetObject",  # the runs page's rejected-rows reports, and nothing else of S3
    }
    (reports,) = [
        st
        for st in t["Resources"]["ApiRole"]["Properties"]["Policies"][0]["PolicyDocument"][
            "Statement"
        ]
        if st["Sid"] == "ReadRejectedRowsReports"
    ]
    assert json.dumps(reports["Resource"]).endswith('"/*.rejected.csv"]]}]')
    route = t["Resources"]["ApiRoute"]["Properties"]
    assert route["AuthorizationType"] == "AWS_IAM"
    assert t["Resources"]["ApiFunction"]["Properties"]["Handler"] == (
        "batchdrop.api.lambda_handler.handler"
    )
    perm = t["Resources"]["ApiInvokePermission"]["Properties"]
    assert perm["Principal"] == "apigateway.amazonaws.com"
    assert "${HttpApi}/*" in perm["SourceArn"]["Fn::Sub"]
    assert "ApiUrl" in t["Outputs"]
    public = template_for(tmp_path, {"api": True, "api_auth": "none"})
    assert public["Resources"]["ApiRoute"]["Properties"]["AuthorizationType"] == "NONE"
    assert "HttpApi" not in template_for(tmp_path)["Resources"]


def test_queue_trigger(tmp_path: Path) -> None:
    t = template_for(tmp_path, {"timeout_s": 600, "max_receive_count": 4, "max_concurrency": 5})
    res = t["Resources"]
    note = res["InboundBucket"]["Properties"]["NotificationConfiguration"]
    assert [c["Event"] for c in note["QueueConfigurations"]] == ["s3:ObjectCreated:*"] * 2
    assert [c["Filter"]["S3Key"]["Rules"] for c in note["QueueConfigurations"]] == [
        [{"Name": "prefix", "Value": "incoming/"}, {"Name": "suffix", "Value": ".csv"}],
        [{"Name": "prefix", "Value": "incoming/"}, {"Name": "suffix", "Value": ".csv.gz"}],
    ]
    # the notification is set once the queue policy lets S3 send; the policy names the bucket
    # by its constructed ARN, not a GetAtt, so there is no cycle
    assert res["InboundBucket"]["DependsOn"] == ["QueuePolicy"]
    assert "InboundBucket" not in refs(res["QueuePolicy"])
    assert res["InboundBucket"]["Properties"]["BucketName"] == {
        "Fn::Sub": "${AWS::StackName}-inbound-${AWS::AccountId}-${AWS::Region}"
    }
    q = res["Queue"]["Properties"]
    assert q["VisibilityTimeout"] == 3600
    assert q["RedrivePolicy"]["maxReceiveCount"] == 4
    esm = res["EventSourceMapping"]["Properties"]
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["ScalingConfig"] == {"MaximumConcurrency": 5}
    assert "InvokePermission" not in res and "EventInvokeConfig" not in res


def test_the_queue_is_taken_by_at_most_max_in_flight_invocations(tmp_path: Path) -> None:
    """A big file's shards are messages on the queue: without deploy.max_concurrency, the
    function takes them (and files) with shards.max_in_flight invocations at most."""
    esm = template_for(tmp_path)["Resources"]["EventSourceMapping"]["Properties"]
    assert esm["ScalingConfig"] == {"MaximumConcurrency": 8}
    esm = template_for(tmp_path, shards={"max_in_flight": 20})["Resources"]["EventSourceMapping"]
    assert esm["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 20}


def test_direct_trigger(tmp_path: Path) -> None:
    res = template_for(tmp_path, {"trigger": "direct"})["Resources"]
    note = res["InboundBucket"]["Properties"]["NotificationConfiguration"]
    assert [c["Function"] for c in note["LambdaConfigurations"]] == [
        {"Fn::GetAtt": ["Function", "Arn"]}
    ] * 2
    assert res["InboundBucket"]["DependsOn"] == ["InvokePermission"]
    perm = res["InvokePermission"]["Properties"]
    assert perm["Principal"] == "s3.amazonaws.com"
    assert perm["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert "InboundBucket" not in refs(res["InvokePermission"])
    dest = res["EventInvokeConfig"]["Properties"]["DestinationConfig"]["OnFailure"]
    assert dest == {"Destination": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
    assert "Queue" not in res and "EventSourceMapping" not in res


def test_buckets_are_private_encrypted_tls_only_and_outlive_the_stack(tmp_path: Path) -> None:
    t = template_for(tmp_path)
    buckets = of_type(t, "AWS::S3::Bucket")
    assert sorted(buckets) == ["ArchiveBucket", "ErrorsBucket", "InboundBucket"]
    for name, b in buckets.items():
        p = b["Properties"]
        assert all(p["PublicAccessBlockConfiguration"].values())
        assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert b["DeletionPolicy"] == "Retain"
        policy = t["Resources"][f"{name}Policy"]["Properties"]["PolicyDocument"]["Statement"]
        assert policy[0]["Effect"] == "Deny"
        assert policy[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_existing_buckets_are_used_not_created(tmp_path: Path) -> None:
    t = template_for(tmp_path, VARIANTS["existing-buckets"])
    assert of_type(t, "AWS::S3::Bucket") == {}
    env = t["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert env["BATCHDROP_INBOUND"] == {"Fn::Join": ["", ["s3://", "corp-inbound", "/incoming/"]]}
    assert "corp-archive" in json.dumps([st for _, st in statements(t)])


def test_tables_keys_and_billing(tmp_path: Path) -> None:
    t = template_for(tmp_path)
    table = t["Resources"]["Table"]["Properties"]
    assert table["KeySchema"] == [
        {"AttributeName": "student_id", "KeyType": "HASH"},
        {"AttributeName": "course", "KeyType": "RANGE"},
    ]
    assert table["AttributeDefinitions"] == [
        {"AttributeName": "student_id", "AttributeType": "S"},
        {"AttributeName": "course", "AttributeType": "S"},
    ]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
    single = template_for(tmp_path, VARIANTS["no-sort-key"])["Resources"]
    p = single["Table"]["Properties"]
    assert p["KeySchema"] == [{"AttributeName": "student_id", "KeyType": "HASH"}]
    assert p["AttributeDefinitions"] == [{"AttributeName": "student_id", "AttributeType": "N"}]
    assert p["BillingMode"] == "PROVISIONED"
    assert p["ProvisionedThroughput"] == {"ReadCapacityUnits": 3, "WriteCapacityUnits": 7}
    ledger = single["LedgerTable"]["Properties"]
    # the ledger is laid out as the DynamoDB ledger reads and writes it
    spec = ledger_table_spec("x")
    assert ledger["KeySchema"] == spec["KeySchema"]
    assert ledger["AttributeDefinitions"] == spec["AttributeDefinitions"]
    assert ledger["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"] == {
        "ReadCapacityUnits": 3,
        "WriteCapacityUnits": 7,
    }


def test_a_composite_key_is_declared_as_joined_text_attributes(tmp_path: Path) -> None:
    fields = [
        {"name": "student_id", "type": "integer"},
        {"name": "term", "type": "date"},
        {"name": "course"},
        {"name": "fname"},
    ]
    key = {"partition_key": ["student_id", "term"], "sort_key": "course"}
    t = template_for(
        tmp_path,
        table={"url": "dynamodb://students", **key},
        schema={"fields": fields, "primaryKey": ["student_id", "term", "course"]},
    )
    table = t["Resources"]["Table"]["Properties"]
    assert table["KeySchema"] == [
        {"AttributeName": "student_id#term", "KeyType": "HASH"},
        {"AttributeName": "course", "KeyType": "RANGE"},
    ]
    assert table["AttributeDefinitions"] == [
        {"AttributeName": "student_id#term", "AttributeType": "S"},
        {"AttributeName": "course", "AttributeType": "S"},
    ]
    named = template_for(
        tmp_path,
        table={
            "url": "dynamodb://students",
            "partition_key": "course",
            "sort_key": ["term", "student_id"],
            "sort_key_name": "SK",
            "key_separator": "|",
        },
        schema={"fields": fields},
    )["Resources"]["Table"]["Properties"]
    assert named["AttributeDefinitions"] == [
        {"AttributeName": "course", "AttributeType": "S"},
        {"AttributeName": "SK", "AttributeType": "S"},
    ]


def test_function_settings_and_environment(tmp_path: Path) -> None:
    t = template_for(
        tmp_path,
        {"memory_mb": 2048, "timeout_s": 120, "architecture": "x86_64", "log_retention_days": 14},
    )
    p = t["Resources"]["Function"]["Properties"]
    assert (p["Runtime"], p["Handler"]) == ("python3.12", "batchdrop.aws.handler.handler")
    assert (p["MemorySize"], p["Timeout"], p["Architectures"]) == (2048, 120, ["x86_64"])
    assert "ReservedConcurrentExecutions" not in p
    assert p["LoggingConfig"]["LogGroup"] == {"Ref": "LogGroup"}
    assert t["Resources"]["LogGroup"]["Properties"]["RetentionInDays"] == 14
    env = p["Environment"]["Variables"]
    assert env["BATCHDROP_TABLE__URL"] == {"Fn::Sub": "dynamodb://${Table}"}
    assert env["BATCHDROP_LEDGER"] == {"Fn::Sub": "dynamodb://${LedgerTable}"}
    assert env["BATCHDROP_NOTIFY"] == {"Fn::Sub": '["sns://${Topic}"]'}
    sequential = template_for(tmp_path, {"sequential": True})["Resources"]["Function"]
    assert sequential["Properties"]["ReservedConcurrentExecutions"] == 1


def test_email_subscription_only_when_an_address_is_given(tmp_path: Path) -> None:
    assert of_type(template_for(tmp_path), "AWS::SNS::Subscription") == {}
    subs = of_type(template_for(tmp_path, {"email": "ops@example.com"}), "AWS::SNS::Subscription")
    assert [s["Properties"]["Endpoint"] for s in subs.values()] == ["ops@example.com"]


def test_outputs_name_every_resource_a_user_needs(tmp_path: Path) -> None:
    assert set(template_for(tmp_path)["Outputs"]) >= {
        "InboundBucket",
        "ArchiveBucket",
        "ErrorsBucket",
        "Table",
        "LedgerTable",
        "Topic",
        "Queue",
        "DeadLetterQueue",
        "Function",
    }


def test_bad_settings_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"deploy\.trigger: got 'sqs'"):
        deploy_settings(make_config(tmp_path, {"trigger": "sqs"}))
    with pytest.raises(ConfigError, match=r"deploy\.memroy_mb: is not a deploy setting"):
        deploy_settings(make_config(tmp_path, {"memroy_mb": 512}))
    with pytest.raises(ConfigError, match=r"deploy\.log_retention_days: must be one of"):
        deploy_settings(make_config(tmp_path, {"log_retention_days": 10}))
    with pytest.raises(ConfigError, match="stack name 'Students_Stack'"):
        deploy_settings(make_config(tmp_path, {"stack_name": "Students_Stack"}))


def test_a_boolean_key_cannot_be_deployed(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        table={"url": "dynamodb://t", "partition_key": "flag"},
        schema={"fields": [{"name": "flag", "type": "boolean"}]},
    )
    with pytest.raises(ConfigError, match="boolean, which DynamoDB cannot use as a key"):
        build_template(config, deploy_settings(config))


def test_defaults_and_stack_name(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    s = deploy_settings(config, email="me@example.com")
    assert (s.trigger, s.architecture, s.billing, s.api, s.api_auth) == (
        "queue",
        "arm64",
        "on_demand",
        False,
        "iam",
    )
    assert s.email == "me@example.com"
    assert s.resolved_stack_name(config) == "batchdrop-students"


def test_webhook_urls_stay_out_of_the_template_and_the_environment(tmp_path: Path) -> None:
    """A webhook URL is a credential: the template (hence the function's environment) names
    the SSM parameter that holds it, pinned to a version, and the role may read that one."""
    secret = "https://user:pw@hooks.example.com/services/T0/B0/XYZ?token=abc"
    t = template_for(tmp_path, {"api": True}, notify=["console", secret])
    text = to_yaml(t)
    for piece in ("hooks.example.com", "services/T0", "token=abc", "user:pw"):
        assert piece not in text
    env = t["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert env["BATCHDROP_NOTIFY_PARAMETER"] == {
        "Fn::Sub": "/batchdrop/${AWS::StackName}/notify:${NotifyParameterVersion}"
    }
    assert t["Parameters"]["NotifyParameterVersion"]["Type"] == "String"
    by_sid = {st["Sid"]: st for role, st in statements(t) if role == "Role"}
    assert by_sid["ReadWebhooks"] == {
        "Sid": "ReadWebhooks",
        "Effect": "Allow",
        "Action": ["ssm:GetParameter"],
        "Resource": [
            {
                "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}"
                ":parameter/batchdrop/${AWS::StackName}/notify"
            }
        ],
    }
    api_env = t["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert "BATCHDROP_NOTIFY_PARAMETER" not in api_env
    assert "ssm:GetParameter" not in actions(t, "ApiRole")
    # without webhooks: no parameter, no variable, no permission
    plain = template_for(tmp_path, notify=["console"])
    assert "NotifyParameterVersion" not in plain["Parameters"]
    assert "BATCHDROP_NOTIFY_PARAMETER" not in json.dumps(plain)
    assert "ssm:GetParameter" not in actions(plain)
