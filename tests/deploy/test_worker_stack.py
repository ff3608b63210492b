"""``batchdrop worker --stack NAME`` on a deployed stack (moto server), through the real
command: the stack's outputs are the config's locations, table, ledger, topic and queue; its
logs are readable lines on a terminal and JSON inside Lambda."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from batchdrop.config import load_config
from batchdrop.deploy.outputs import config_from_outputs, read_stack
from batchdrop.deploy.package import build_package
from batchdrop.deploy.settings import deploy_settings
from batchdrop.deploy.stack import StackClient

from .configs import write_config

pytestmark = pytest.mark.aws
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "students"
#: ``2026-11-28 06:55:01 INFO    file processed file=students.csv status=loaded …``
PLAIN = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S")


def client(name: str) -> Any:
    return boto3.client(name, region_name="us-east-1")


def deployed(tmp: Path, stack: str) -> dict[str, str]:
    """The students example as deployed (its config keeps local locations and SQLite)."""
    config = load_config(EXAMPLE / "batchdrop.yaml", environ={})
    settings = deploy_settings(config)
    package = build_package(config, settings, tmp / "lambda.zip", with_dependencies=False)
    sc = StackClient(config, poll=0.01, echo=lambda _: None)
    return sc.deploy(config, settings, stack, package).outputs


def worker(stack: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "batchdrop", "--config", str(EXAMPLE / "batchdrop.yaml")),
            *("worker", "--stack", stack, "--wait", "1", "--until-empty"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def cli_json(*args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "batchdrop", "--config", str(EXAMPLE / "batchdrop.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def courses(table: str, student: str) -> list[str]:
    items = client("dynamodb").query(
        TableName=table,
        KeyConditionExpression="student_id = :s",
        ExpressionAttributeValues={":s": {"S": student}},
    )["Items"]
    return sorted(i["course"]["S"] for i in items)


def log_records(stderr: str) -> list[str]:
    """The log lines of the worker's stderr (without its closing summary)."""
    return [line for line in stderr.splitlines() if "left for a retry" not in line and line]


def test_worker_stack_loads_a_file_with_readable_logs_then_json_in_lambda(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    stack = f"wk-{unique}"
    out = deployed(tmp_path, stack)
    s3 = client("s3")
    s3.upload_file(str(EXAMPLE / "students.csv"), out["InboundBucket"], "students.csv")

    done = worker(stack)
    assert done.returncode == 0, done.stderr
    assert "0 left for a retry" in done.stderr
    assert courses(out["Table"], "A10002") == [
        "Chemistry, Advanced",
        "Modern Forensics",
        "Science Of Deduction",
    ]
    assert s3.list_objects_v2(Bucket=out["InboundBucket"]).get("KeyCount") == 0
    archived = s3.list_objects_v2(Bucket=out["ArchiveBucket"])["Contents"]
    assert [o["Key"] for o in archived] == ["students.csv"]
    runs = client("dynamodb").scan(TableName=out["LedgerTable"])["Items"]
    assert any(i.get("file", {}).get("S") == "students.csv" for i in runs)
    # a terminal reads lines, not JSON
    lines = log_records(done.stderr)
    assert lines and all(PLAIN.match(line) for line in lines if not line[0].isspace()), lines
    for line in lines:
        with pytest.raises(ValueError):
            json.loads(line)
    (processed,) = [line for line in lines if " file processed " in line]
    assert "file=students.csv" in processed and "status=loaded_with_rejects" in processed
    assert "rows_loaded=10" in processed

    # runs and get read the stack's ledger and table, not the config's SQLite file
    seen = cli_json("runs", "--stack", stack, "--json")
    assert [(r["file"], r["rows_loaded"]) for r in seen] == [("students.csv", 10)]
    items = cli_json("get", "--stack", stack, "A10002", "--json")
    assert sorted(i["course"] for i in items) == courses(out["Table"], "A10002")

    # the same worker inside Lambda logs JSON
    s3.upload_file(str(EXAMPLE / "students.csv"), out["InboundBucket"], "again.csv")
    done = worker(stack, AWS_LAMBDA_FUNCTION_NAME="batchdrop")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in log_records(done.stderr)]
    (processed_json,) = [r for r in records if r["message"] == "file processed"]
    assert processed_json["file"] == "again.csv" and processed_json["rows_loaded"] == 10
    assert processed_json["level"] == "INFO"


def test_stack_outputs_become_the_functions_config(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    """What the function's environment says, the config read from the outputs says too."""
    stack = f"wk-{unique}"
    config = load_config(write_config(tmp_path), environ={})  # inbound s3://in/incoming/
    settings = deploy_settings(config)
    package = build_package(config, settings, tmp_path / "lambda.zip", with_dependencies=False)
    out = StackClient(config, poll=0.01, echo=lambda _: None).deploy(
        config, settings, stack, package
    )
    env = client("lambda").get_function_configuration(FunctionName=out.outputs["Function"])[
        "Environment"
    ]["Variables"]
    read = read_stack(config, stack)
    made = config_from_outputs(config, read)
    assert (
        made.inbound == env["BATCHDROP_INBOUND"] == f"s3://{out.outputs['InboundBucket']}/incoming/"
    )
    assert (made.archive, made.errors) == (env["BATCHDROP_ARCHIVE"], env["BATCHDROP_ERRORS"])
    assert made.table.url == env["BATCHDROP_TABLE__URL"]
    assert made.table.table_name == env["BATCHDROP_TABLE__NAME"]
    assert made.ledger_url == env["BATCHDROP_LEDGER"]
    assert made.notify == json.loads(env["BATCHDROP_NOTIFY"])
    assert read.queue == out.outputs["Queue"]
    # the webhooks stay in SSM, at the version the stack pins
    assert read.notify_parameter == env["BATCHDROP_NOTIFY_PARAMETER"]
    assert made.schema_ == config.schema_ and made.key == config.key


def test_worker_needs_a_queue_or_a_stack_that_exists(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    from click.testing import CliRunner

    from batchdrop.cli import cli
    from batchdrop.errors import ConfigError

    path = str(write_config(tmp_path))
    neither = CliRunner().invoke(cli, ["--config", path, "worker", "--until-empty"])
    assert neither.exit_code == 2
    assert "give the queue (--queue QUEUE_URL) or the stack (--stack NAME)" in neither.output
    missing = CliRunner().invoke(
        cli, ["--config", path, "worker", "--stack", f"nope-{unique}", "--until-empty"]
    )
    assert isinstance(missing.exception, ConfigError)
    assert f"there is no stack named nope-{unique}" in str(missing.exception)


def test_a_stack_with_the_direct_trigger_has_no_queue_for_the_worker() -> None:
    from batchdrop.deploy.outputs import StackOutputs
    from batchdrop.errors import ConfigError

    with pytest.raises(ConfigError, match="stack s has no queue \\(its trigger is direct\\)"):
        StackOutputs("s", {"InboundBucket": "in", "Function": "fn"}).queue  # noqa: B018
