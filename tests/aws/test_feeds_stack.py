"""A config with three feeds deployed to the moto server: one stack (one function, one queue, one
ledger) with a table per feed, and a file of each feed loaded into its own table by the
function's code acting as the stack's role."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
import yaml

from batchdrop.aws import clients
from batchdrop.aws.handler import Runtime
from batchdrop.aws.worker import Worker
from batchdrop.config import load_config
from batchdrop.deploy.feeds import environment_size
from batchdrop.deploy.outputs import config_from_outputs, read_stack
from batchdrop.deploy.package import build_package
from batchdrop.deploy.settings import deploy_settings
from batchdrop.deploy.stack import DeployResult, StackClient
from batchdrop.deploy.template import build_template
from batchdrop.errors import ConfigError

from ..deploy.configs import write_config
from ..unit.feeds_deploy import TABLES, write_feeds
from .iam import Resolver, create_user, physical_resources, role_policy

pytestmark = pytest.mark.aws


def client(name: str) -> Any:
    return boto3.client(name, region_name="us-east-1")


def deploy(tmp: Path, stack: str, **changes: Any) -> tuple[Path, DeployResult]:
    path = write_feeds(tmp, **changes)
    config = load_config(path, environ={})
    settings = deploy_settings(config)
    package = build_package(config, settings, tmp / "lambda.zip", with_dependencies=False)
    sc = StackClient(config, poll=0.01, echo=lambda _: None)
    return path, sc.deploy(config, settings, stack, package)


def function_environment(out: dict[str, str]) -> dict[str, str]:
    reply = client("lambda").get_function_configuration(FunctionName=out["Function"])
    return dict(reply["Environment"]["Variables"])


def test_three_feeds_deploy_as_one_stack_with_a_table_each(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    stack = f"feeds-{unique}"
    path, result = deploy(tmp_path, stack)
    assert result.changed
    out = result.outputs
    ddb = client("dynamodb")
    arns = {}
    for logical, key, types in TABLES.values():
        table = ddb.describe_table(TableName=out[logical])["Table"]
        assert table["KeySchema"] == [{"AttributeName": a, "KeyType": k} for a, k in key]
        assert sorted(
            (d["AttributeName"], d["AttributeType"]) for d in table["AttributeDefinitions"]
        ) == sorted(types.items())
        arns[logical] = table["TableArn"]
    assert len(set(arns.values())) == 3
    assert "Table" not in out
    ledger = ddb.describe_table(TableName=out["LedgerTable"])["Table"]
    assert [i["IndexName"] for i in ledger["GlobalSecondaryIndexes"]] == ["runs"]

    # the function's environment names each feed's table, and the one ledger
    env = function_environment(out)
    for feed, (logical, _, _) in TABLES.items():
        spelt = feed.upper().replace("-", "_")
        assert env[f"BATCHDROP_FEEDS__{spelt}__TABLE__URL"] == f"dynamodb://{out[logical]}"
        assert f"BATCHDROP_FEEDS__{spelt}__TABLE__NAME" not in env  # the URL names it
    assert env["BATCHDROP_LEDGER"] == f"dynamodb://{out['LedgerTable']}"
    assert not [k for k in env if k.startswith("BATCHDROP_TABLE__")]
    # the template's bound on the environment's size holds for the names the stack was given
    config = load_config(path, environ={})
    template = build_template(config, deploy_settings(config))
    declared = template["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert sum(len(k) + len(v) for k, v in env.items()) <= environment_size(declared)
    # ...so the bundled config, read with it, sends each feed to its own table
    deployed = load_config(path, environ=env)
    assert {f.name: f.config.table.table_name for f in deployed.feeds} == {
        feed: out[logical] for feed, (logical, _, _) in TABLES.items()
    }

    # the role the stack made grants each feed's writes on that feed's table alone
    role = client("lambda").get_function_configuration(FunctionName=out["Function"])["Role"]
    iam = client("iam")
    name = role.rsplit("/", 1)[-1]
    (policy_name,) = iam.list_role_policies(RoleName=name)["PolicyNames"]
    doc = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
    if isinstance(doc, str):  # moto returns the inline policy as a Python literal
        doc = ast.literal_eval(unquote(doc))
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    assert sorted(by_sid["WriteFeedTables"]["Resource"]) == sorted(arns.values())
    assert by_sid["PutIfNewer"]["Resource"] == [arns["FeedGradesTable"]]

    # commands run elsewhere (worker, runs, get with --stack) read the same from the outputs
    made = config_from_outputs(config, read_stack(config, stack), environ={})
    assert [(f.name, f.config.table.url, f.config.table.table_name) for f in made.feeds] == [
        (f.name, f.config.table.url, f.config.table.table_name) for f in deployed.feeds
    ]
    assert {f.config.ledger_url for f in made.feeds} == {env["BATCHDROP_LEDGER"]}
    assert {f.config.inbound for f in made.feeds} == {env["BATCHDROP_INBOUND"]}
    assert made.feeds[1].config.schema_ == config.feeds[1].config.schema_
    # a config without these feeds is not this stack's
    (tmp_path / "single").mkdir()
    single = load_config(write_config(tmp_path / "single"), environ={})
    with pytest.raises(ConfigError, match=r"has no output Table: is it a batchdrop stack"):
        read_stack(single, stack)


FILES = {
    "students/list.csv": "student_id,fname,course\nA1,Ada,Math\nA2,Alan,Logic\n",
    "grades_2026.csv": (
        "exam,student_id,grade,graded_on\n101,A1,17.5,2026-01-10\n102,A2,15,2026-01-11\n"
    ),
    "fees/spring.csv": "student_id,term,amount\nA1,2026-03-01,12.5\n",
}


def scan(ddb: Any, table: str, *key: str) -> list[dict[str, Any]]:
    """The table's items (attribute → value), ordered by ``key``."""
    items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    plain = [{k: next(iter(v.values())) for k, v in i.items()} for i in items]
    return sorted(plain, key=lambda i: tuple(i[k] for k in key))


@pytest.fixture
def as_admin(iam_moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The IAM-enforcing server, with boto3 (and batchdrop) signing as its administrator."""
    server = iam_moto_server
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.admin_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.admin_secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    clients.clear_cache()
    yield server
    clients.clear_cache()


def test_a_file_of_each_feed_lands_in_its_own_table(
    as_admin: Any, tmp_path: Path, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deployed by the administrator; the function's work done as a user holding exactly the
    stack's Role policy, resolved to the deployed resources."""
    server, stack = as_admin, f"feeds-e2e-{unique}"
    # the write modes the DynamoDB table does not run yet are left out
    path, result = deploy(tmp_path, stack, modes=False)
    out = result.outputs
    s3, ddb = server.client("s3"), server.client("dynamodb")
    for name, body in {**FILES, "teachers/list.csv": "teacher_id\nT1\n"}.items():
        s3.put_object(Bucket=out["InboundBucket"], Key=f"incoming/{name}", Body=body.encode())
    with server.unenforced():  # moto's Lambda API fails signature checks under IAM
        reply = server.client("lambda").get_function_configuration(FunctionName=out["Function"])
    env = reply["Environment"]["Variables"]
    body = server.client("cloudformation").get_template(StackName=stack)["TemplateBody"]
    template = body if isinstance(body, dict) else yaml.safe_load(body)
    resolve = Resolver(stack, physical_resources(server.client, stack))
    key, secret = create_user(
        server.client("iam"), f"fn-{unique}", role_policy(template, "Role", resolve)
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    clients.clear_cache()

    # the function's code, run here as its role, with the environment the stack gives it
    config = load_config(path, environ=env)
    stats = Worker(Runtime(config), out["Queue"], wait_seconds=1).run(until_empty=True)
    assert stats.received >= 4 and stats.failed == 0  # and S3's test event

    assert scan(ddb, out["FeedStudentsTable"], "student_id", "course") == [
        {"student_id": "A1", "fname": "Ada", "course": "Math"},
        {"student_id": "A2", "fname": "Alan", "course": "Logic"},
    ]
    grades = scan(ddb, out["FeedGradesTable"], "exam", "student_id")
    assert [(g["exam"], g["student_id"], g["grade"], g["graded_on"]) for g in grades] == [
        ("101", "A1", "17.5", "2026-01-10"),
        ("102", "A2", "15", "2026-01-11"),
    ]
    fees = scan(ddb, out["FeedLateFeesTable"], "student_id#term")
    assert [(f["student_id#term"], f["amount"]) for f in fees] == [("A1#2026-03-01", "12.5")]
    # every file left the inbound location (a file matching no feed for the errors location,
    # rejected); one ledger holds the four runs
    assert s3.list_objects_v2(Bucket=out["InboundBucket"]).get("Contents", []) == []
    archived = [o["Key"] for o in s3.list_objects_v2(Bucket=out["ArchiveBucket"])["Contents"]]
    assert sorted(Path(k).name for k in archived) == sorted(Path(n).name for n in FILES)
    errors = [o["Key"] for o in s3.list_objects_v2(Bucket=out["ErrorsBucket"])["Contents"]]
    assert "teachers/list.csv" in errors, errors
    runs = ddb.query(
        TableName=out["LedgerTable"],
        IndexName="runs",
        KeyConditionExpression="run_list = :r",
        ExpressionAttributeValues={":r": {"S": "runs"}},
    )["Items"]
    assert sorted((r["file"]["S"], r["status"]["S"]) for r in runs) == sorted(
        [(name, "loaded") for name in FILES] + [("teachers/list.csv", "rejected")]
    )
