"""Deploy to moto (server mode, over HTTP): create, no-op redeploy, update, destroy."""

from __future__ import annotations

import ast
import json
import urllib.parse
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from batchdrop.config import Config
from batchdrop.deploy.package import Package, build_package
from batchdrop.deploy.settings import DeploySettings, deploy_settings
from batchdrop.deploy.stack import DeployError, StackClient
from batchdrop.errors import ConfigError

from .configs import make_config

pytestmark = pytest.mark.aws


def client(name: str) -> Any:
    return boto3.client(name, region_name="us-east-1")


def deploy(
    tmp: Path, stack: str, deploy_cfg: dict[str, Any] | None = None, lines: list[str] | None = None
) -> tuple[Config, StackClient, Any]:
    config = make_config(tmp, deploy_cfg)
    settings = deploy_settings(config)
    package = build_package(config, settings, tmp / "lambda.zip", with_dependencies=False)
    out = lines if lines is not None else []
    sc = StackClient(config, poll=0.01, echo=out.append)
    return config, sc, sc.deploy(config, settings, stack, package)


def test_deploy_creates_the_resources_with_their_settings(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    stack = f"bd-{unique}"
    lines: list[str] = []
    _, _, result = deploy(
        tmp_path,
        stack,
        {"memory_mb": 512, "timeout_s": 120, "sequential": True, "log_retention_days": 14},
        lines,
    )
    assert result.changed
    out = result.outputs
    assert out["InboundBucket"] == f"{stack}-inbound-123456789012-us-east-1"
    assert any("CREATE_COMPLETE" in line for line in lines)  # progress was shown

    ddb = client("dynamodb")
    table = ddb.describe_table(TableName=out["Table"])["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "student_id", "KeyType": "HASH"},
        {"AttributeName": "course", "KeyType": "RANGE"},
    ]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ledger = ddb.describe_table(TableName=out["LedgerTable"])["Table"]
    assert [i["IndexName"] for i in ledger["GlobalSecondaryIndexes"]] == ["runs"]

    sqs = client("sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=out["Queue"], AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "720"
    dlq_arn = sqs.get_queue_attributes(
        QueueUrl=out["DeadLetterQueue"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"] == dlq_arn

    lam = client("lambda")
    fn = lam.get_function_configuration(FunctionName=out["Function"])
    assert (fn["Runtime"], fn["Handler"], fn["MemorySize"], fn["Timeout"]) == (
        "python3.12",
        "batchdrop.aws.handler.handler",
        512,
        120,
    )
    env = fn["Environment"]["Variables"]
    assert env["BATCHDROP_TABLE__URL"] == f"dynamodb://{out['Table']}"
    assert env["BATCHDROP_INBOUND"] == f"s3://{out['InboundBucket']}/incoming/"
    assert env["BATCHDROP_ARCHIVE"] == f"s3://{out['ArchiveBucket']}/done/"
    assert json.loads(env["BATCHDROP_NOTIFY"])[0] == f"sns://{out['Topic']}"
    assert (
        lam.get_function_concurrency(FunctionName=out["Function"])["ReservedConcurrentExecutions"]
        == 1
    )
    mappings = lam.list_event_source_mappings(FunctionName=out["Function"])["EventSourceMappings"]
    assert [m["EventSourceArn"] for m in mappings] == [attrs["QueueArn"]]

    s3 = client("s3")
    for key in ("InboundBucket", "ArchiveBucket", "ErrorsBucket"):
        enc = s3.get_bucket_encryption(Bucket=out[key])["ServerSideEncryptionConfiguration"]
        assert enc["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert client("sns").get_topic_attributes(TopicArn=out["Topic"])["Attributes"]
    groups = client("logs").describe_log_groups(logGroupNamePrefix=out["LogGroup"])["logGroups"]
    assert [g.get("retentionInDays") for g in groups] == [14]


def test_a_second_deploy_with_nothing_changed_changes_nothing(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    stack = f"bd-{unique}"
    config, sc, first = deploy(tmp_path, stack)
    cfn = client("cloudformation")
    before = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    events = len(cfn.describe_stack_events(StackName=stack)["StackEvents"])
    lines: list[str] = []
    sc.echo = lines.append
    package = build_package(
        config, deploy_settings(config), tmp_path / "again.zip", with_dependencies=False
    )
    second = sc.deploy(config, deploy_settings(config), stack, package)
    assert not second.changed
    assert second.outputs == first.outputs
    assert any("up to date: no changes" in line for line in lines)
    assert any("package already uploaded" in line for line in lines)
    after = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    assert after["StackStatus"] == before["StackStatus"]
    assert len(cfn.describe_stack_events(StackName=stack)["StackEvents"]) == events
    assert cfn.list_change_sets(StackName=stack).get("Summaries", []) == [] or all(
        s["ExecutionStatus"] == "EXECUTE_COMPLETE"
        for s in cfn.list_change_sets(StackName=stack)["Summaries"]
    )


def test_a_changed_setting_updates_the_stack(aws_env: str, tmp_path: Path, unique: str) -> None:
    stack = f"bd-{unique}"
    deploy(tmp_path, stack)
    _, _, result = deploy(tmp_path, stack, {"memory_mb": 2048})
    assert result.changed
    fn = client("lambda").get_function_configuration(FunctionName=result.outputs["Function"])
    assert fn["MemorySize"] == 2048
    assert (
        client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        == "UPDATE_COMPLETE"
    )


def test_destroy_removes_the_stack_and_keeps_buckets_that_hold_files(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    stack = f"bd-{unique}"
    _, sc, result = deploy(tmp_path, stack)
    out = result.outputs
    s3 = client("s3")
    s3.put_object(Bucket=out["ArchiveBucket"], Key="done/students.csv", Body=b"a,b\n")
    kept = sc.destroy(stack)
    assert kept == [out["ArchiveBucket"]]
    assert sc.stack(stack) is None or sc.stack(stack)["StackStatus"] == "DELETE_COMPLETE"
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert out["ArchiveBucket"] in names
    assert not {out["InboundBucket"], out["ErrorsBucket"]} & names
    assert out["Table"] not in client("dynamodb").list_tables()["TableNames"]
    assert out["Function"] not in {
        f["FunctionName"] for f in client("lambda").list_functions()["Functions"]
    }
    # kept buckets no longer notify a queue that is gone
    assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(
        Bucket=out["ArchiveBucket"]
    )


def test_destroy_force_deletes_buckets_with_their_files(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    stack = f"bd-{unique}"
    _, sc, result = deploy(tmp_path, stack, {"versioning": True})
    s3 = client("s3")
    bucket = result.outputs["ErrorsBucket"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"one", b"two"):
        s3.put_object(Bucket=bucket, Key="students.csv", Body=body)
    s3.delete_object(Bucket=bucket, Key="students.csv")
    assert sc.destroy(stack, force=True) == []
    assert bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_destroy_of_a_missing_stack_says_so(aws_env: str, tmp_path: Path, unique: str) -> None:
    sc = StackClient(make_config(tmp_path), poll=0.01, echo=lambda _: None)
    with pytest.raises(ConfigError, match=f"there is no stack named nope-{unique}"):
        sc.destroy(f"nope-{unique}")


def stored_webhooks() -> dict[str, Any]:
    """SSM's answer when the stack's parameter already holds the config's webhook URLs."""
    return {
        "Parameter": {
            "Name": "/batchdrop/s/notify",
            "Type": "SecureString",
            "Value": json.dumps(["https://hooks.example.com/batchdrop"]),
            "Version": 1,
        }
    }


def test_an_empty_change_set_is_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CloudFormation's own answer to an unchanged template: a FAILED change set, deleted."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    config = make_config(tmp_path)
    settings = DeploySettings(artifact_bucket="artifacts")
    sc = StackClient(
        config, poll=0, echo=lambda _: None, session=boto3.session.Session(region_name="us-east-1")
    )
    stack_id = "arn:aws:cloudformation:us-east-1:1:stack/s/1"
    cs_id = "arn:aws:cloudformation:us-east-1:1:changeSet/c/1"
    package = Package(tmp_path / "p.zip", 1, 1, "ab" * 32, 1)
    with Stubber(sc.s3) as s3, Stubber(sc.cfn) as cfn, Stubber(sc.ssm) as ssm:
        s3.add_response("head_bucket", {}, {"Bucket": "artifacts"})
        ssm.add_response("get_parameter", stored_webhooks())
        s3.add_response(
            "head_object", {}, {"Bucket": "artifacts", "Key": "s/" + "ab" * 16 + ".zip"}
        )
        cfn.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "s",
                        "StackId": stack_id,
                        "StackStatus": "UPDATE_COMPLETE",
                        "CreationTime": "2026-01-01T00:00:00Z",
                    }
                ]
            },
        )
        cfn.add_response("create_change_set", {"Id": cs_id, "StackId": stack_id})
        cfn.add_response(
            "describe_change_set",
            {
                "Status": "FAILED",
                "ChangeSetId": cs_id,
                "StackName": "s",
                "StatusReason": "The submitted information didn't contain changes. Submit "
                "different information to create a change set.",
            },
        )
        cfn.add_response("delete_change_set", {}, {"ChangeSetName": cs_id, "StackName": "s"})
        cfn.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "s",
                        "StackId": stack_id,
                        "StackStatus": "UPDATE_COMPLETE",
                        "CreationTime": "2026-01-01T00:00:00Z",
                        "Outputs": [{"OutputKey": "Table", "OutputValue": "t"}],
                    }
                ]
            },
        )
        cfn.add_response("get_template", {"TemplateBody": "Outputs:\n  Table: {Value: t}\n"})
        result = sc.deploy(config, settings, "s", package)
        cfn.assert_no_pending_responses()
    assert not result.changed and result.outputs == {"Table": "t"}


def test_a_failed_change_set_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    config = make_config(tmp_path)
    sc = StackClient(
        config, poll=0, echo=lambda _: None, session=boto3.session.Session(region_name="us-east-1")
    )
    cs_id = "arn:aws:cloudformation:us-east-1:1:changeSet/c/1"
    with Stubber(sc.s3) as s3, Stubber(sc.cfn) as cfn, Stubber(sc.ssm) as ssm:
        s3.add_response("head_bucket", {})
        s3.add_response("head_object", {})
        cfn.add_client_error("describe_stacks", "ValidationError", "Stack with id s does not exist")
        ssm.add_response("get_parameter", stored_webhooks())
        cfn.add_response("create_change_set", {"Id": cs_id, "StackId": "sid"})
        cfn.add_response(
            "describe_change_set",
            {"Status": "FAILED", "ChangeSetId": cs_id, "StatusReason": "Bucket name is taken"},
        )
        with pytest.raises(DeployError, match="change set for s failed: Bucket name is taken"):
            sc.deploy(
                config,
                DeploySettings(artifact_bucket="artifacts"),
                "s",
                Package(tmp_path / "p.zip", 1, 1, "cd" * 32, 1),
            )


def test_the_stack_with_the_api_deploys(aws_env: str, tmp_path: Path, unique: str) -> None:
    """moto has no API Gateway v2 in CloudFormation: it deploys the rest (the API's function
    and role); the HTTP API itself is checked by the template tests and cfn-lint."""
    stack = f"bd-{unique}"
    _, _, result = deploy(tmp_path, stack, {"api": True, "trigger": "direct"})
    fn = client("lambda").get_function_configuration(FunctionName=result.outputs["ApiFunction"])
    assert fn["Handler"] == "batchdrop.api.lambda_handler.handler"
    assert fn["Environment"]["Variables"]["BATCHDROP_TABLE__URL"] == (
        f"dynamodb://{result.outputs['Table']}"
    )
    role = fn["Role"].rsplit("/", 1)[1]
    iam = client("iam")
    [policy] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    if isinstance(doc, str):  # moto returns the inline policy as a Python literal
        doc = ast.literal_eval(urllib.parse.unquote(doc))
    actions = {a for st in doc["Statement"] for a in st["Action"]}
    assert actions == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "s3:GetObject",  # the rejected-rows reports the runs page streams
    }


def test_webhooks_go_to_ssm_and_a_deploy_without_them_deletes_the_parameter(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    stack, name = f"bd-{unique}", f"/batchdrop/bd-{unique}/notify"
    lines: list[str] = []
    deploy(tmp_path, stack, lines=lines)  # the config notifies https://hooks.example.com/…
    param = client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert (param["Type"], json.loads(param["Value"])) == (
        "SecureString",
        ["https://hooks.example.com/batchdrop"],
    )
    assert f"wrote 1 webhook URL(s) to SSM parameter {name} (version 1)" in lines

    config = make_config(tmp_path, notify=["console"])
    settings = deploy_settings(config)
    package = build_package(config, settings, tmp_path / "plain.zip", with_dependencies=False)
    lines.clear()
    sc = StackClient(config, poll=0.01, echo=lines.append)
    assert sc.deploy(config, settings, stack, package).changed
    assert f"deleted SSM parameter {name}" in lines
    with pytest.raises(client("ssm").exceptions.ParameterNotFound):
        client("ssm").get_parameter(Name=name)
