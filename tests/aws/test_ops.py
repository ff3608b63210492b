"""``status``, ``redrive`` and ``retry`` on the moto server: dead-letter messages moved back to
the events queue (and loaded by the worker), failed runs of a deployed stack run again, and
what waits in its queues."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from batchdrop.aws import clients
from batchdrop.aws.ops import QueueDepth, describe, queue_depth, redrive, s3_event
from batchdrop.cli import cli
from batchdrop.config import load_config
from batchdrop.errors import ConfigError
from batchdrop.tables import dynamodb

pytestmark = pytest.mark.aws
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "students"
STUDENTS = (EXAMPLE / "students.csv").read_text(encoding="utf-8")


def sqs() -> Any:
    return boto3.client("sqs", region_name="us-east-1")


def bodies(url: str) -> list[str]:
    """The bodies of every message of a queue (released again at once)."""
    out, handles = [], []
    while True:
        got = sqs().receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
        msgs = got.get("Messages", [])
        if not msgs:
            break
        out += [m["Body"] for m in msgs]
        handles += [m["ReceiptHandle"] for m in msgs]
    for h in handles:
        sqs().change_message_visibility(QueueUrl=url, ReceiptHandle=h, VisibilityTimeout=0)
    return sorted(out)


def drain(url: str) -> None:
    """Delete every message of a queue (PurgeQueue may run once a minute)."""
    while True:
        msgs = sqs().receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return
        for m in msgs:
            sqs().delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_redrive_moves_every_message_with_its_attributes(aws_env: str, unique: str) -> None:
    queue = sqs().create_queue(QueueName=f"events-{unique}")["QueueUrl"]
    dlq = sqs().create_queue(QueueName=f"dlq-{unique}")["QueueUrl"]
    sent = [s3_event("in", f"incoming/file {i}.csv") for i in range(12)]
    for body in sent:
        sqs().send_message(
            QueueUrl=dlq,
            MessageBody=body,
            MessageAttributes={"origin": {"DataType": "String", "StringValue": "s3"}},
        )
    told: list[str] = []
    dry = redrive(sqs(), dlq, queue, dry_run=True, each=told.append)
    assert dry.moved == 12 and dry.failed == 0
    assert sorted(told) == sorted(f"s3://in/incoming/file {i}.csv" for i in range(12))
    assert bodies(queue) == [] and bodies(dlq) == sorted(sent)  # nothing moved, all visible

    first = redrive(sqs(), dlq, queue, limit=5)
    assert first.moved == 5 and len(bodies(queue)) == 5 and len(bodies(dlq)) == 7
    rest = redrive(sqs(), dlq, queue)
    assert rest.moved == 7 and bodies(dlq) == [] and bodies(queue) == sorted(sent)
    assert queue_depth(sqs(), dlq) == QueueDepth(0, 0, 0)  # gone, not only hidden
    got = sqs().receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"][0]
    assert got["MessageAttributes"]["origin"]["StringValue"] == "s3"
    assert redrive(sqs(), dlq, queue).moved == 0


def test_describe_names_the_files_of_every_kind_of_message() -> None:
    assert describe(s3_event("b", "in/a+b c.csv")) == "s3://b/in/a+b c.csv"
    failed_invocation = json.dumps(
        {
            "requestContext": {"condition": "RetriesExhausted"},
            "requestPayload": json.loads(s3_event("b", "x.csv")),
        }
    )
    assert describe(failed_invocation) == "s3://b/x.csv"
    assert describe("not json").startswith("the message body is not JSON")


# --- a deployed stack -----------------------------------------------------------------------


@dataclass
class Deployed:
    config: Path
    name: str
    out: dict[str, str]

    def run(self, *args: str) -> Any:
        clients.clear_cache()
        return CliRunner().invoke(cli, ["--config", str(self.config), *args, "--stack", self.name])

    def status(self) -> dict[str, Any]:
        result = self.run("status", "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def upload(self, key: str, body: str = STUDENTS) -> None:
        boto3.client("s3", region_name="us-east-1").put_object(
            Bucket=self.out["InboundBucket"], Key=key, Body=body.encode()
        )

    def worker(self) -> Any:
        """The function's work on the events queue, done by the worker with the function's
        environment, until the queue is empty."""
        from batchdrop.aws.handler import Runtime
        from batchdrop.aws.worker import Worker

        env = boto3.client("lambda", region_name="us-east-1").get_function_configuration(
            FunctionName=self.out["Function"]
        )["Environment"]["Variables"]
        clients.clear_cache()
        runtime = Runtime(load_config(self.config, environ=env))
        return Worker(runtime, self.out["Queue"], wait_seconds=1).run(until_empty=True)

    def items(self) -> int:
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        return len(ddb.scan(TableName=self.out["Table"])["Items"])


@pytest.fixture
def deployed(aws_env: str, tmp_path: Path, unique: str) -> Iterator[Deployed]:
    from batchdrop.deploy.package import build_package
    from batchdrop.deploy.settings import deploy_settings
    from batchdrop.deploy.stack import StackClient

    path = tmp_path / "batchdrop.yaml"
    shutil.copy(EXAMPLE / "batchdrop.yaml", path)
    path.write_text(path.read_text() + "\nmax_attempts: 2\n")
    config = load_config(path, environ={})
    settings = deploy_settings(config)
    package = build_package(config, settings, tmp_path / "fn.zip", with_dependencies=False)
    name = f"ops-{unique}"
    sc = StackClient(config, poll=0.01, echo=lambda _: None)
    out = sc.deploy(config, settings, name, package).outputs
    drain(out["Queue"])  # the s3:TestEvent of the bucket's notification
    yield Deployed(path, name, out)
    clients.clear_cache()


def test_status_and_redrive_of_a_stack(deployed: Deployed) -> None:
    d = deployed
    s = d.status()
    assert s["queue"] == {"waiting": 0, "in_flight": 0}
    assert s["dead_letter_queue"] == {"waiting": 0, "in_flight": 0}
    d.upload("students.csv")  # the bucket's notification puts its event in the queue
    assert d.status()["queue"]["waiting"] == 1
    # the function gave up on it: the event is in the dead-letter queue (as after
    # max_receive_count failed deliveries)
    (body,) = bodies(d.out["Queue"])
    drain(d.out["Queue"])
    sqs().send_message(QueueUrl=d.out["DeadLetterQueue"], MessageBody=body)
    s = d.status()
    assert s["queue"]["waiting"] == 0 and s["dead_letter_queue"]["waiting"] == 1
    text = d.run("status")
    assert "1 message(s) (batchdrop redrive once the cause is fixed)" in text.output

    dry = d.run("redrive", "--dry-run")
    assert dry.exit_code == 0, dry.output
    where = f"s3://{d.out['InboundBucket']}/students.csv"
    assert f"would move: {where}" in dry.output
    assert "would move 1 message(s) from the dead-letter queue" in dry.output
    assert bodies(d.out["DeadLetterQueue"]) == [body] and bodies(d.out["Queue"]) == []

    moved = d.run("redrive")
    assert moved.exit_code == 0, moved.output
    assert f"moved: {where}" in moved.output and "moved 1 message(s)" in moved.output
    assert bodies(d.out["DeadLetterQueue"]) == [] and bodies(d.out["Queue"]) == [body]

    assert d.worker().failed == 0
    assert d.items() == 10
    s = d.status()
    assert s["files"] == {"loaded_with_rejects": 1}
    assert (s["rows_loaded"], s["rows_rejected"]) == (10, 2)
    assert s["queue"]["waiting"] == 0 and s["dead_letter_queue"]["waiting"] == 0


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """While ``on``, every load into DynamoDB fails as a bug would."""
    state = {"on": True}
    begin = dynamodb.DynamoTable.begin

    def begin_or_fail(self: Any, claim: Any, ledger: Any) -> Any:
        if state["on"]:
            raise RuntimeError("a bug that only this deployment meets")
        return begin(self, claim, ledger)

    monkeypatch.setattr(dynamodb.DynamoTable, "begin", begin_or_fail)
    return state


def test_retry_a_failed_run_of_a_stack(deployed: Deployed, broken: dict[str, bool]) -> None:
    d = deployed
    d.upload("a.csv")
    assert d.worker().failed == 1  # its message waits for its next delivery, in flight
    (failure,) = d.status()["failures"]
    assert (failure["file"], failure["where"]) == ("a.csv", "inbound")
    assert "a bug that only this deployment meets" in failure["reason"]

    broken["on"] = False  # fixed
    result = d.run("retry", failure["run_id"])
    assert result.exit_code == 0, result.output
    assert f"queued s3://{d.out['InboundBucket']}/a.csv" in result.output
    assert [describe(b) for b in bodies(d.out["Queue"])] == [f"s3://{d.out['InboundBucket']}/a.csv"]
    assert d.worker().failed == 0
    assert d.items() == 10
    assert d.status()["failures"] == []


def test_retry_a_set_aside_file_of_a_stack_here_or_through_the_queue(
    deployed: Deployed, broken: dict[str, bool]
) -> None:
    from batchdrop.aws.handler import Runtime

    d = deployed
    env = boto3.client("lambda", region_name="us-east-1").get_function_configuration(
        FunctionName=d.out["Function"]
    )["Environment"]["Variables"]
    runtime = Runtime(load_config(d.config, environ=env))
    for key in ("b.csv", "c.csv"):
        d.upload(key)
        event = {
            "Records": [
                {
                    "eventSource": "aws:sqs",
                    "messageId": key,
                    "body": s3_event(d.out["InboundBucket"], key),
                }
            ]
        }
        for _ in range(2):  # max_attempts: 2, then set aside in the errors bucket
            runtime.handle(event, lambda: 600.0)
    drain(d.out["Queue"])
    failures = {f["file"]: f for f in d.status()["failures"]}
    assert {f: (x["where"], x["set_aside"]) for f, x in failures.items()} == {
        "b.csv": ("errors", True),
        "c.csv": ("errors", True),
    }
    broken["on"] = False

    # through the queue: back in the inbound bucket, its notification queues it
    result = d.run("retry", failures["b.csv"]["run_id"])
    assert result.exit_code == 0, result.output
    assert "is back in inbound" in result.output
    assert [describe(b) for b in bodies(d.out["Queue"])] == [f"s3://{d.out['InboundBucket']}/b.csv"]
    assert d.worker().failed == 0

    # here: loaded in this process, its receipt printed
    here = d.run("retry", failures["c.csv"]["run_id"], "--here", "--json")
    assert here.exit_code == 0, here.output
    receipt = json.loads(here.stdout.splitlines()[-1])
    assert (receipt["file"], receipt["status"], receipt["rows_loaded"]) == (
        "c.csv",
        "loaded_with_rejects",
        10,
    )
    s = d.status()
    assert s["failures"] == [] and s["files"] == {"loaded_with_rejects": 2}
    archived = boto3.client("s3", region_name="us-east-1").list_objects_v2(
        Bucket=d.out["ArchiveBucket"]
    )
    assert sorted(o["Key"] for o in archived["Contents"]) == ["b.csv", "c.csv"]

    again = d.run("retry", failures["c.csv"]["run_id"])
    assert isinstance(again.exception, ConfigError) and "a later run may have loaded it" in str(
        again.exception
    )
