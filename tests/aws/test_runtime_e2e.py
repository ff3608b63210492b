"""The Lambda runtime end to end on the moto server: the example CSV from upload to receipt.

Every test here runs on the IAM-enforcing server as a user holding exactly the loader role's
policy from ``batchdrop template`` (``iam_stack``): a call the role does not allow fails the test.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchdrop.aws import handler as lambda_handler
from batchdrop.aws.handler import BatchFailed, Runtime
from batchdrop.config import Config, parse_config

from .conftest import IamStack, Stack, event_file, s3_event, sqs_event

pytestmark = pytest.mark.aws
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "students"
NAME = "2026/students list+1.csv"  # a folder, a space and a plus sign
EXPECTED_KEYS = [
    ("A10001", "Military Medicine"),
    ("A10001", "Science Of Deduction"),
    ("A10002", "Chemistry, Advanced"),
    ("A10002", "Modern Forensics"),
    ("A10002", "Science Of Deduction"),
    ("A10003", "Opera, Performance"),
    ("A10004", "Government"),
    ("A10005", "Housekeeping"),
    ("A10007", "Modern Forensics"),
    ("A10008", "Mathematics, Applied"),
]


@pytest.fixture
def stack(iam_stack: IamStack) -> IamStack:
    return iam_stack


def example_settings(stack: Stack, **overrides: Any) -> dict[str, Any]:
    """The bundled example's config, pointed at this test's buckets, tables and topic."""
    data = yaml.safe_load((EXAMPLE / "batchdrop.yaml").read_text(encoding="utf-8"))
    data.update(
        inbound=f"s3://{stack.inbound}/incoming/",
        archive=f"s3://{stack.archive}/",
        errors=f"s3://{stack.errors}/rejected/",
        ledger=f"dynamodb://{stack.ledger}",
        notify=[f"sns://{stack.topic_arn}"],
        aws={"endpoint_url": stack.endpoint, "region": "us-east-1"},
    )
    data["table"] = {**data["table"], "url": f"dynamodb://{stack.table}", "name": None}
    data.update(overrides)
    return data


def example_config(stack: Stack, **overrides: Any) -> Config:
    return parse_config(example_settings(stack, **overrides), source="test", environ={})


def upload_example(stack: Stack, name: str = NAME) -> dict[str, Any]:
    body = (EXAMPLE / "students.csv").read_bytes()
    put = stack.upload("incoming/" + name, body)
    return s3_event(stack.inbound, "incoming/" + name, size=len(body), etag=put["ETag"].strip('"'))


def plenty() -> float:
    return 600.0


def assert_loaded_once(
    stack: Stack, receipts: list[dict[str, Any]], name: str = NAME, report: bool = True
) -> None:
    assert [(i["student_id"], i["course"]) for i in stack.items()] == EXPECTED_KEYS
    assert stack.keys(stack.inbound) == []
    assert name in stack.keys(stack.archive)
    loaded = [r for r in receipts if r["MessageAttributes"]["status"]["Value"] != "failed"]
    assert len(loaded) == 1
    doc = json.loads(loaded[0]["Message"])["receipt"]
    assert loaded[0]["MessageAttributes"]["status"]["Value"] == "loaded_with_rejects"
    assert (doc["rows_read"], doc["rows_loaded"], doc["rows_rejected"]) == (12, 10, 2)
    assert doc["moved_to"] == f"s3://{stack.archive}/{name}"
    if report:
        assert doc["rejected_rows_report"].startswith(f"s3://{stack.errors}/rejected/2026/")


def test_direct_s3_event_end_to_end(stack: Stack) -> None:
    runtime = Runtime(example_config(stack))
    reply = runtime.handle(upload_example(stack), plenty)
    assert [r["status"] for r in reply["results"]] == ["loaded_with_rejects"]
    receipts = stack.receipts()
    assert_loaded_once(stack, receipts)
    report_key = json.loads(receipts[0]["Message"])["receipt"]["rejected_rows_report"]
    report = stack.s3.get_object(Bucket=stack.errors, Key=report_key.split("/", 3)[3])
    text = report["Body"].read().decode()
    assert "A1006" in text and "line" in text.splitlines()[0]
    (run,) = runtime.pipeline.backends.ledger.runs()
    assert (run["state"], run["status"], run["file"]) == ("done", "loaded_with_rejects", NAME)
    assert run["moved_to"] == f"s3://{stack.archive}/{NAME}"


def test_same_event_twice_gives_one_notification(stack: Stack) -> None:
    runtime = Runtime(example_config(stack))
    event = upload_example(stack)
    runtime.handle(event, plenty)
    again = runtime.handle(event, plenty)  # S3 delivers at least once
    assert [r["status"] for r in again["results"]] == ["gone"]
    assert_loaded_once(stack, stack.receipts())


def test_two_invocations_racing_on_one_file(stack: Stack) -> None:
    event = upload_example(stack)
    runtimes = [Runtime(example_config(stack)) for _ in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def invoke(rt: Runtime) -> None:
        barrier.wait()
        try:
            rt.handle(event, plenty)
            outcomes.append(rt.last_results[0].status)
        except BatchFailed:  # "busy": Lambda retries the invocation later
            outcomes.append("retry")

    threads = [threading.Thread(target=invoke, args=(rt,)) for rt in runtimes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "loaded_with_rejects" in outcomes
    assert set(outcomes) <= {"loaded_with_rejects", "retry", "gone", "already_processed"}
    retried = runtimes[0].handle(event, plenty)  # the retry finds the work done
    assert retried["results"][0]["status"] in ("gone", "already_processed")
    assert_loaded_once(stack, stack.receipts())


def test_sqs_batch_reports_only_failed_messages(stack: Stack) -> None:
    config = example_config(stack)
    runtime = Runtime(config)
    good = upload_example(stack, "good.csv")
    stack.upload("incoming/held.csv", (EXAMPLE / "students.csv").read_bytes())
    ref = runtime.pipeline.inbound.stat("held.csv")
    assert runtime.pipeline.backends.ledger.claim(ref).outcome == "new"  # another live run
    held = s3_event(stack.inbound, "incoming/held.csv")
    event = sqs_event(good, event_file("s3_test_event.json"), "not json", held)
    reply = runtime.handle(event, plenty)
    assert reply == {
        "batchItemFailures": [{"itemIdentifier": "msg-2"}, {"itemIdentifier": "msg-3"}]
    }
    statuses = {r.key: r.status for r in runtime.last_results}
    assert statuses == {"incoming/good.csv": "loaded_with_rejects", "incoming/held.csv": "busy"}
    assert stack.keys(stack.inbound) == ["incoming/held.csv"]


def test_eventbridge_event_and_objects_outside_inbound(stack: Stack) -> None:
    runtime = Runtime(example_config(stack))
    upload_example(stack, "spring term.csv")
    event = event_file("eventbridge.json")
    event["detail"]["bucket"]["name"] = stack.inbound
    event["detail"]["object"]["key"] = "incoming/spring+term.csv"
    stray = s3_event(stack.archive, "incoming/other.csv")  # the wrong bucket
    assert runtime.handle(stray, plenty)["results"][0]["status"] == "ignored"
    notes = s3_event(stack.inbound, "incoming/readme.txt")
    assert runtime.handle(notes, plenty)["results"][0]["status"] == "ignored"
    reply = runtime.handle(event, plenty)
    assert reply["results"][0]["status"] == "loaded_with_rejects"
    assert stack.keys(stack.archive) == ["spring term.csv"]


def test_rejected_file_goes_to_the_error_bucket(stack: Stack) -> None:
    runtime = Runtime(example_config(stack, on_error="reject_file"))
    runtime.handle(upload_example(stack, "bad.csv"), plenty)
    assert stack.items() == []  # validated whole before the first write
    keys = stack.keys(stack.errors)
    assert "rejected/bad.csv" in keys and "rejected/bad.rejected.csv" in keys
    (msg,) = stack.receipts()
    assert msg["MessageAttributes"]["status"]["Value"] == "rejected"


def test_no_time_left_fails_the_message_without_starting(stack: Stack) -> None:
    runtime = Runtime(example_config(stack))
    event = sqs_event(upload_example(stack))
    assert runtime.handle(event, lambda: 5.0) == {
        "batchItemFailures": [{"itemIdentifier": "msg-0"}]
    }
    assert runtime.last_results[0].status == "not_started"
    with pytest.raises(BatchFailed, match="not_started"):
        runtime.handle(json.loads(event["Records"][0]["body"]), lambda: 5.0)
    assert stack.items() == [] and stack.receipts(wait=0) == []


def test_running_out_of_time_midway_then_retry(stack: Stack) -> None:
    runtime = Runtime(example_config(stack, batch_size=2))
    event = sqs_event(upload_example(stack))
    calls = {"n": 0}

    def shrinking() -> float:
        calls["n"] += 1
        return 600.0 if calls["n"] <= 3 else 1.0  # plenty, then almost nothing

    first = runtime.handle(event, shrinking)
    assert first == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert len(stack.items()) < len(EXPECTED_KEYS)
    assert stack.keys(stack.inbound) == [f"incoming/{NAME}"]
    assert runtime.handle(event, plenty) == {"batchItemFailures": []}
    assert_loaded_once(stack, stack.receipts())


def test_crash_between_write_and_move_then_rerun(stack: Stack) -> None:
    runtime = Runtime(example_config(stack))
    runtime.pipeline.backends.ledger.ttl = -1  # the crashed run's lease lapses at once
    event = upload_example(stack)
    real_move = runtime.pipeline.inbound.move

    def crash(*args: Any, **kw: Any) -> str:
        raise RuntimeError("killed between the commit and the move")

    runtime.pipeline.inbound.move = crash  # type: ignore[method-assign]
    with pytest.raises(BatchFailed):
        runtime.handle(event, plenty)
    assert len(stack.items()) == len(EXPECTED_KEYS)
    assert stack.keys(stack.archive) == []
    (run,) = runtime.pipeline.backends.ledger.runs()
    assert run["state"] == "committed"
    runtime.pipeline.inbound.move = real_move  # type: ignore[method-assign]
    rerun = runtime.handle(event, plenty)
    assert rerun["results"][0]["status"] == "loaded_with_rejects"
    # the report was placed before the commit, so the resumed run's receipt still names it
    assert_loaded_once(stack, stack.receipts())
    (run,) = runtime.pipeline.backends.ledger.runs()
    assert run["state"] == "done"


def test_crash_after_the_move_is_finished_by_the_next_container(stack: Stack) -> None:
    runtime = Runtime(example_config(stack))
    runtime.pipeline.backends.ledger.ttl = -120  # the crashed run's lease lapsed long ago
    event = upload_example(stack)
    ledger = runtime.pipeline.backends.ledger
    real_record = ledger.record

    def crash_at_done(claim: Any, state: str, receipt: Any) -> None:
        if state == "done":
            raise RuntimeError("killed after the move, before the run was recorded")
        real_record(claim, state, receipt)

    ledger.record = crash_at_done  # type: ignore[method-assign]
    with pytest.raises(BatchFailed):
        runtime.handle(event, plenty)
    assert stack.keys(stack.inbound) == [] and stack.keys(stack.archive)
    assert stack.receipts(wait=0) == []
    (run,) = ledger.runs()
    assert run["state"] == "committed"

    fresh = Runtime(example_config(stack))  # a new container: looks for what a crash left
    fresh.handle(event, plenty)  # the event comes again: the file is gone, nothing to load
    (run,) = fresh.pipeline.backends.ledger.runs()
    assert run["state"] == "done"
    assert_loaded_once(stack, stack.receipts())


class FakeContext:
    function_name = "batchdrop"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:batchdrop"
    aws_request_id = "5c1b7b8a-4c56-4b1f-9a6e-0d6e2c1c9f11"
    log_group_name = "/aws/lambda/batchdrop"
    log_stream_name = "2026/11/27/[$LATEST]abc"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


def test_lambda_entrypoint_with_bundled_config_and_env(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = example_settings(stack)
    settings["inbound"] = "./local-inbound"  # the bundled value; the environment overrides it
    path = tmp_path / "batchdrop.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    monkeypatch.setenv("BATCHDROP_CONFIG", str(path))
    monkeypatch.setenv("BATCHDROP_INBOUND", f"s3://{stack.inbound}/incoming/")
    lambda_handler.reset()
    log = io.StringIO()
    old = lambda_handler.logger.registered_handler.setStream(log)
    try:
        ctx = FakeContext()
        assert lambda_handler.handler(event_file("s3_test_event.json"), ctx) == {
            "ignored": "s3:TestEvent"
        }
        reply = lambda_handler.handler(sqs_event(upload_example(stack)), ctx)
    finally:
        lambda_handler.logger.registered_handler.setStream(old)
        lambda_handler.reset()
    assert reply == {"batchItemFailures": []}
    assert_loaded_once(stack, stack.receipts())
    logs = [json.loads(line) for line in log.getvalue().splitlines()]
    (processed,) = [x for x in logs if x.get("message") == "file processed"]
    assert processed["rows_loaded"] == 10 and processed["status"] == "loaded_with_rejects"
    assert processed["function_request_id"] == FakeContext.aws_request_id
    emf = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('{"_aws"')
    ]
    assert emf[-1]["RowsLoaded"] == [10.0] and emf[-1]["FilesLoadedWithRejects"] == [1.0]
    assert "FilesFailed" not in emf[-1]
