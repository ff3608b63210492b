"""Webhook URLs kept in SSM: read once when the Lambda starts, posted to, and never logged.

Run on the IAM-enforcing server as the loader role's user (``iam_stack``): the role may read
exactly its one parameter.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from batchdrop.aws import handler as lambda_handler
from batchdrop.aws.secrets import load_runtime_config
from batchdrop.errors import ConfigError

from .conftest import IamStack, sqs_event
from .test_iam_policy import function_config
from .test_runtime_e2e import FakeContext, upload_example

pytestmark = pytest.mark.aws
SECRETS = ("hunter2", "services/T0/B0", "XXXXXXXX", "token=", "abcdef")


class Hooks:
    """Webhook receivers on one local server: ``/good/...`` accepts, anything else refuses."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.bodies: list[dict[str, Any]] = []
        self.good = f"{self.base}/good/services/T0/B0/XXXXXXXX?token=abcdef"
        self.failing = f"http://ops:hunter2@127.0.0.1:{port}/bad/services/T0/B0/XXXXXXXX?token=x"


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Hooks(server.server_port)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path.startswith("/good/"):
                state.bodies.append(json.loads(body))
                self.send_response(204)
            else:  # refused, not failed: a 4xx is not retried, which keeps the test quick
                self.send_response(403)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


def store(stack: IamStack, env: dict[str, str], value: str) -> str:
    """As the administrator, what ``batchdrop deploy`` writes: the URLs, version 1."""
    name = env["BATCHDROP_NOTIFY_PARAMETER"].rsplit(":", 1)[0]
    stack.server.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString")
    return name


def test_the_lambda_reads_its_webhooks_once_and_never_logs_them(
    iam_stack: IamStack,
    hooks: Hooks,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = function_config(iam_stack, tmp_path)
    assert not any("127.0.0.1" in v for v in env.values())  # the environment names no URL
    name = store(iam_stack, env, json.dumps([hooks.good, hooks.failing]))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    lambda_handler.reset()
    log = io.StringIO()
    old = lambda_handler.logger.registered_handler.setStream(log)
    try:
        reply = lambda_handler.handler(
            sqs_event(upload_example(iam_stack, "one.csv")), FakeContext()
        )
        assert reply == {"batchItemFailures": []}
        # read once per container: later invocations do not need the parameter
        iam_stack.server.client("ssm").delete_parameter(Name=name)
        reply = lambda_handler.handler(
            sqs_event(upload_example(iam_stack, "two.csv")), FakeContext()
        )
        assert reply == {"batchItemFailures": []}
    finally:
        lambda_handler.logger.registered_handler.setStream(old)
        lambda_handler.reset()
    assert sorted(b["receipt"]["file"] for b in hooks.bodies) == ["one.csv", "two.csv"]
    host = hooks.base.removeprefix("http://")
    failures = [r.getMessage() for r in caplog.records if "notification by" in r.getMessage()]
    assert failures == [
        f"{f}: notification by WebhookNotifier failed: webhook http://{host}/[redacted] did not "
        "accept the notification: HTTP 403 Forbidden"
        for f in ("one.csv", "two.csv")
    ]
    everything = caplog.text + log.getvalue() + capsys.readouterr().out
    for piece in SECRETS:
        assert piece not in everything


def test_without_its_permission_the_runtime_names_the_parameter_not_the_urls(
    iam_stack: IamStack, hooks: Hooks, tmp_path: Path
) -> None:
    env = function_config(iam_stack, tmp_path)
    name = store(iam_stack, env, json.dumps([hooks.good]))
    iam_stack.run_as("Role", drop={"ssm:GetParameter"})
    with pytest.raises(ConfigError) as caught:
        load_runtime_config(env)
    message = str(caught.value)
    assert f"cannot read the webhook URLs from SSM parameter {name}:1" in message
    assert "ssm:GetParameter" in message
    for piece in SECRETS:
        assert piece not in message


def test_a_parameter_that_is_not_a_list_of_urls_is_refused_unseen(
    iam_stack: IamStack, tmp_path: Path
) -> None:
    env = function_config(iam_stack, tmp_path)
    name = store(iam_stack, env, "https://hooks.example.com/services/T0/B0/XXXXXXXX")
    with pytest.raises(ConfigError) as caught:
        load_runtime_config(env)
    assert str(caught.value) == (
        "BATCHDROP_NOTIFY_PARAMETER: SSM parameter "
        f"{name}:1 must hold a JSON list of https:// webhook URLs"
    )


def test_the_worker_command_runs_with_the_function_environment(
    iam_stack: IamStack, hooks: Hooks, tmp_path: Path
) -> None:
    """``batchdrop worker`` given the function's variables: the config loads (the parameter's
    variable is not a setting), and the webhooks come from the parameter it names."""
    from click.testing import CliRunner

    from batchdrop.cli import cli

    env = function_config(iam_stack, tmp_path)
    store(iam_stack, env, json.dumps([hooks.good]))
    iam_stack.upload("incoming/cli.csv", b"student_id,fname,lname,course\nA10001,Ada,L,Maths\n")
    result = CliRunner().invoke(
        cli,
        ["worker", "--queue", iam_stack.events_queue, "--wait", "0", "--until-empty"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "0 left for a retry" in result.output
    assert [b["receipt"]["file"] for b in hooks.bodies] == ["cli.csv"]
