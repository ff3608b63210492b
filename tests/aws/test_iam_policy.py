"""The roles of ``batchdrop template``, enforced: enough for everything the runtime does, and
nothing it does not need.

Each test runs on the IAM-enforcing moto server as a user holding exactly one role's inline
policy, resolved to the test's resources (``iam_stack``; what moto does and does not enforce is
in ``tests/aws/iam.py``). The scenario drives the worker over the stack's queue through every
kind of call the loader makes; removing any one action from the role must break it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchdrop.api import lambda_handler as api_handler
from batchdrop.aws import clients
from batchdrop.aws.handler import BatchFailed, Runtime
from batchdrop.aws.secrets import load_runtime_config
from batchdrop.aws.worker import Worker
from batchdrop.deploy.package import config_text
from batchdrop.deploy.template import render

from .conftest import EXAMPLE, IamStack, s3_event, template_config
from .iam import ACCOUNT, REGION
from .test_runtime_e2e import EXPECTED_KEYS
from .test_worker import waiting

pytestmark = pytest.mark.aws

#: grants (statement id / action) that no test on moto can show to be needed, and why they are
#: granted all the same
NOT_EXERCISED = {
    "Logs/logs:CreateLogStream": "Lambda writes the function's logs to its group, not batchdrop",
    "Logs/logs:PutLogEvents": "Lambda writes the function's logs to its group, not batchdrop",
    "ReadAndRemoveInbound/s3:GetObjectTagging": (
        "CopyObject copies the source's tags; moto does not authorize the copy's source"
    ),
    "WriteArchiveAndErrors/s3:PutObjectTagging": (
        "CopyObject copies the source's tags; moto authorizes only s3:PutObject for it"
    ),
    "WriteArchiveAndErrors/s3:AbortMultipartUpload": (
        "a failed multipart copy (above 5 GB) or upload (above 64 MB) is aborted"
    ),
    "RequeuePausedFile/sqs:SendMessage": (
        "only a run paused by the deadline sends it: test_resume_on_aws runs that as this "
        "role and fails if a paused file comes back as a redelivery instead"
    ),
    "ListInbound/s3:ListBucket": (
        "without it AWS answers 403, not 404, for a file already moved (an event delivered "
        "twice); moto answers 404 either way"
    ),
}


class Hook:
    """A webhook receiver on 127.0.0.1: what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.url = ""


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_port}/services/T0/B0/secret"
    yield state
    server.shutdown()
    server.server_close()


def function_config(stack: IamStack, tmp: Path) -> dict[str, str]:
    """The deployed function's environment, with the bundled config at a local path."""
    bundled = tmp / "batchdrop.yaml"
    bundled.write_text(config_text(template_config()), encoding="utf-8")
    return {**stack.function_environment(), "BATCHDROP_CONFIG": str(bundled)}


def seed_a_crashed_run(stack: IamStack, env: dict[str, str]) -> None:
    """As the administrator: ``early.csv`` loaded and moved by a run that died before it
    recorded the run done (and notified): the next runtime to start must finish it."""
    with stack.as_admin():
        runtime = Runtime(load_runtime_config(env))
        ledger = runtime.pipeline.backends.ledger
        ledger.ttl = -120  # the dead run's lease lapsed long ago
        real_record = ledger.record

        def crash_at_done(claim: Any, state: str, receipt: Any) -> None:
            if state == "done":
                raise RuntimeError("killed after the move, before the run was recorded")
            real_record(claim, state, receipt)

        ledger.record = crash_at_done  # type: ignore[method-assign]
        stack.upload("incoming/early.csv", (EXAMPLE / "students.csv").read_bytes())
        with pytest.raises(BatchFailed):
            runtime.handle(s3_event(stack.inbound, "incoming/early.csv"), lambda: 600.0)
    assert stack.keys(stack.archive) == ["early.csv"]


class Errors(logging.Handler):
    """The error lines batchdrop logs (a failed notification, a recovery that could not run)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def run_scenario(stack: IamStack, hook: Hook, tmp: Path) -> list[str]:
    """Files through the stack's queue and the worker, as the current user; what went wrong.

    A crashed run is finished first (the runs index, reads of the ledger). ``students.csv``
    loads with rejected rows (a report goes to errors) and finds its name taken in the archive
    (a listing, a free name); ``bad.csv`` is rejected whole (moved to errors). Every receipt goes
    to the topic and to the webhook kept in SSM.
    """
    env = function_config(stack, tmp)
    name, version = env["BATCHDROP_NOTIFY_PARAMETER"].rsplit(":", 1)
    ssm = stack.server.client("ssm")
    ssm.put_parameter(Name=name, Value=json.dumps([hook.url]), Type="SecureString")
    assert str(ssm.get_parameter(Name=name)["Parameter"]["Version"]) == version
    seed_a_crashed_run(stack, env)
    stack.upload("students.csv", b"an older file of the same name\n", bucket=stack.archive)
    stack.upload("incoming/students.csv", (EXAMPLE / "students.csv").read_bytes())
    stack.upload("incoming/bad.csv", b"no,such,columns\n1,2,3\n")

    problems = []
    errors = Errors()
    logging.getLogger("batchdrop").addHandler(errors)
    try:
        worker = Worker(Runtime(load_runtime_config(env)), stack.events_queue, wait_seconds=0)
        worker.batch = 10
        worker.run(until_empty=True)
    except Exception as e:
        problems.append(f"the worker stopped: {type(e).__name__}: {e}")
    finally:
        logging.getLogger("batchdrop").removeHandler(errors)
    problems += [f"logged: {line}" for line in errors.lines]
    items = [(i["student_id"], i["course"]) for i in stack.items()]
    if items != EXPECTED_KEYS:
        problems.append(f"rows: {len(items)} of {len(EXPECTED_KEYS)}")
    if stack.keys(stack.inbound):
        problems.append(f"left in inbound: {stack.keys(stack.inbound)}")
    archived = stack.keys(stack.archive)
    if len(archived) != 3 or not any(k.startswith("students-") for k in archived):
        problems.append(f"archive: {archived}")
    kept = stack.keys(stack.errors)
    if "rejected/bad.csv" not in kept or not any(k.endswith(".rejected.csv") for k in kept):
        problems.append(f"errors: {kept}")
    if any("/_batchdrop/state/" in k for k in kept):  # each run removes its checkpoints
        problems.append(f"run state left in errors: {kept}")
    want = ["loaded_with_rejects", "loaded_with_rejects", "rejected"]
    statuses = sorted(r["MessageAttributes"]["status"]["Value"] for r in stack.receipts(wait=0))
    if statuses != want:
        problems.append(f"receipts on the topic: {statuses}")
    posted = sorted(b["receipt"]["status"] for b in hook.bodies)
    if posted != want:
        problems.append(f"receipts posted to the webhook: {posted}")
    if waiting(stack, stack.events_queue):
        problems.append("messages left on the queue")
    runs = stack.ddb.query(
        TableName=stack.ledger,
        IndexName="runs",
        KeyConditionExpression="run_list = :r",
        ExpressionAttributeValues={":r": {"S": "runs"}},
    )["Items"]
    states = sorted(r["state"]["S"] for r in runs)
    if states != ["done"] * 3:
        problems.append(f"runs in the ledger: {states}")
    return problems


def grants(role: str = "Role", **deploy: Any) -> list[str]:
    """Every grant (statement id / action) of ``role`` in ``batchdrop template``'s output."""
    template = yaml.safe_load(render(template_config(**deploy)))
    (policy,) = template["Resources"][role]["Properties"]["Policies"]
    return sorted(
        f"{st['Sid']}/{a}" for st in policy["PolicyDocument"]["Statement"] for a in st["Action"]
    )


def test_the_loader_role_runs_the_whole_scenario(
    iam_stack: IamStack, hook: Hook, tmp_path: Path
) -> None:
    assert run_scenario(iam_stack, hook, tmp_path) == []


@pytest.mark.parametrize("grant", [g for g in grants() if g not in NOT_EXERCISED])
def test_each_grant_of_the_loader_role_is_needed(
    iam_stack: IamStack, hook: Hook, tmp_path: Path, grant: str
) -> None:
    iam_stack.run_as("Role", drop={grant})
    problems = run_scenario(iam_stack, hook, tmp_path)
    assert problems, f"without {grant} the scenario still works: is it needed?"


VERSIONED = {"versioning": True}
#: what versioned buckets add, and the grants of it no test on moto can show to be needed
VERSION_GRANTS = sorted(set(grants(**VERSIONED)) - set(grants()))
VERSION_NOT_EXERCISED = {
    "ReadAndRemoveInbound/s3:GetObjectVersionTagging": (
        "CopyObject copies the source version's tags; moto does not authorize the copy's source"
    ),
    "ListInbound/s3:ListBucketVersions": "lists waiting files (`batchdrop run`), not the Lambda",
}


@pytest.mark.parametrize("iam_stack", [VERSIONED], indirect=True)
def test_the_versioned_loader_role_runs_the_whole_scenario(
    iam_stack: IamStack, hook: Hook, tmp_path: Path
) -> None:
    assert run_scenario(iam_stack, hook, tmp_path) == []


@pytest.mark.parametrize("iam_stack", [VERSIONED], indirect=True)
@pytest.mark.parametrize("grant", [g for g in VERSION_GRANTS if g not in VERSION_NOT_EXERCISED])
def test_each_grant_for_versioned_buckets_is_needed(
    iam_stack: IamStack, hook: Hook, tmp_path: Path, grant: str
) -> None:
    iam_stack.run_as("Role", drop={grant})
    problems = run_scenario(iam_stack, hook, tmp_path)
    assert problems, f"without {grant} the scenario still works: is it needed?"


def test_grants_no_test_can_exercise_are_still_granted() -> None:
    assert set(NOT_EXERCISED) <= set(grants())
    assert set(VERSION_NOT_EXERCISED) <= set(VERSION_GRANTS)


def test_the_policies_name_exactly_the_stack_resources(iam_stack: IamStack) -> None:
    """moto checks DynamoDB, SNS, SSM and Logs actions against any resource: here, every ARN a
    role names is one of the stack's resources (or objects under its buckets)."""
    st = iam_stack
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table"
    named = {
        f"arn:aws:s3:::{st.inbound}",
        f"arn:aws:s3:::{st.inbound}/incoming/*",
        f"arn:aws:s3:::{st.archive}",
        f"arn:aws:s3:::{st.archive}/*",
        f"arn:aws:s3:::{st.errors}",
        f"arn:aws:s3:::{st.errors}/*",
        f"arn:aws:s3:::{st.errors}/rejected/_batchdrop/state/*",
        f"arn:aws:s3:::{st.errors}/rejected/*.rejected.csv",
        f"{table}/{st.table}",
        f"{table}/{st.ledger}",
        f"{table}/{st.ledger}/index/*",
        st.topic_arn,
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:events-{st.suffix}",
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/batchdrop/{st.stack_name}/notify",
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{st.stack_name}-LogGroup:*",
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{st.stack_name}-ApiLogGroup:*",
    }
    for role in ("Role", "ApiRole"):
        resources = {r for s in st.policy(role)["Statement"] for r in s["Resource"]}
        assert resources <= named, (role, resources - named)
    api = {r for s in st.policy("ApiRole")["Statement"] for r in s["Resource"]}
    assert not any(":sqs:" in r or ":ssm:" in r for r in api)
    # of S3, the rejected-rows reports in the errors location only (the runs page's downloads)
    assert {r for r in api if ":s3:" in r} == {f"arn:aws:s3:::{st.errors}/rejected/*.rejected.csv"}


#: the API role's actions: both its statements grant them, one on the table, one on the ledger,
#: and moto checks DynamoDB actions on any resource, so an action is dropped from both (which
#: ARNs each statement names is checked above)
API_ACTIONS = sorted({g.split("/", 1)[1] for g in grants("ApiRole") if not g.startswith("Logs/")})


@pytest.mark.parametrize("drop", ["", *API_ACTIONS])
def test_the_api_role_serves_items_and_runs_and_needs_each_action(
    iam_stack: IamStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, drop: str
) -> None:
    """Each endpoint as the API's role; without any one of its actions, an endpoint fails."""
    st = iam_stack
    env = function_config(st, tmp_path)
    env.pop("BATCHDROP_NOTIFY_PARAMETER")
    st.upload("incoming/students.csv", (EXAMPLE / "students.csv").read_bytes())
    Worker(Runtime(load_runtime_config(env)), st.events_queue, wait_seconds=0).run(until_empty=True)
    assert len(st.items()) == len(EXPECTED_KEYS)

    st.run_as("ApiRole", drop={drop})
    api_env = st.function_environment("ApiFunction")
    assert "BATCHDROP_NOTIFY_PARAMETER" not in api_env
    # given the loader's variables all the same, the API does not read the webhooks (its role
    # may not), nor take the variable for a setting
    loader_only = {"BATCHDROP_NOTIFY_PARAMETER": "/batchdrop/elsewhere/notify:1"}
    for k, v in {**api_env, **loader_only, "BATCHDROP_CONFIG": env["BATCHDROP_CONFIG"]}.items():
        monkeypatch.setenv(k, v)
    api_handler.reset()
    try:
        item = api_handler.handler(http_get("/items/A10002/Modern%20Forensics"), None)
        page = api_handler.handler(http_get("/items/A10002"), None)
        runs = api_handler.handler(http_get("/runs"), None)
        run_id = json.loads(runs["body"])["runs"][0]["run_id"] if runs["statusCode"] == 200 else ""
        run = api_handler.handler(http_get(f"/runs/{run_id or 'none'}"), None)
        report = api_handler.handler(http_get(f"/runs/{run_id or 'none'}/report"), None)
    finally:
        api_handler.reset()
    answers = [item, page, runs, run, report]
    if drop:
        assert [a["statusCode"] for a in answers] != [200] * 5, f"{drop} is not needed"
        return
    assert [a["statusCode"] for a in answers] == [200] * 5, [a["body"] for a in answers]
    assert report["body"].count("\n") == 3  # the header and the example's 2 rejected rows
    # the role reads reports, not the files set aside beside them
    with st.as_admin():
        st.s3.put_object(Bucket=st.errors, Key="rejected/partner.csv", Body=b"id\n1\n")
    with pytest.raises(Exception) as refused:
        clients.client("s3").get_object(Bucket=st.errors, Key="rejected/partner.csv")
    assert clients.error_code(refused.value) in ("AccessDenied", "403")
    assert json.loads(item["body"])["fname"] == "Sherlock"
    assert json.loads(page["body"])["count"] == 3
    assert [r["file"] for r in json.loads(runs["body"])["runs"]] == ["students.csv"]
    assert json.loads(run["body"])["status"] == "loaded_with_rejects"


def http_get(path: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) GET, as the gateway sends it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "abc123.execute-api.us-east-1.amazonaws.com"},
        "requestContext": {
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
            },
            "requestId": "id",
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }
