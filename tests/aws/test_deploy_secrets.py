"""``batchdrop deploy`` with webhooks, on the IAM-enforcing server: the URLs go to an SSM
SecureString parameter and nowhere else; the function, as its own role, reads them and posts.

The stack is deployed by the administrator; the worker then runs with the deployed function's
environment as a user holding the template's ``Role`` policy resolved to the deployed resources.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

from batchdrop.aws import clients
from batchdrop.aws.handler import Runtime
from batchdrop.aws.secrets import load_runtime_config
from batchdrop.aws.worker import Worker
from batchdrop.config import Config, load_config
from batchdrop.deploy.package import build_package
from batchdrop.deploy.settings import deploy_settings
from batchdrop.deploy.stack import StackClient

from .conftest import EXAMPLE
from .iam import Resolver, create_user, physical_resources, role_policy
from .test_secrets import SECRETS, Hooks, hooks  # noqa: F401 (a fixture)

pytestmark = pytest.mark.aws


@pytest.fixture
def as_admin(iam_moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
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


def function_environment(server: Any, function: str) -> dict[str, str]:
    with server.unenforced():
        reply = server.client("lambda").get_function_configuration(FunctionName=function)
    return reply["Environment"]["Variables"]  # type: ignore[no-any-return]


def example(tmp: Path, webhooks: list[str]) -> Config:
    """The students example as a user deploys it: its file, with webhooks among its notifiers."""
    data = yaml.safe_load((EXAMPLE / "batchdrop.yaml").read_text(encoding="utf-8"))
    data["notify"] = ["console", *webhooks]
    path = tmp / "batchdrop.yaml"
    path.write_text("# the students example, deployed\n" + yaml.safe_dump(data, sort_keys=False))
    return load_config(path, environ={})


def test_webhooks_live_in_ssm_only_and_the_function_posts_to_them(
    as_admin: Any,
    hooks: Hooks,  # noqa: F811
    tmp_path: Path,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, stack = as_admin, f"sec-{unique}"
    config = example(tmp_path, [hooks.good, hooks.failing])
    settings = deploy_settings(config)
    package = build_package(config, settings, tmp_path / "lambda.zip", with_dependencies=False)
    sc = StackClient(config, poll=0.01, echo=lambda _: None)
    out = sc.deploy(config, settings, stack, package).outputs

    # the URLs are in the SecureString parameter, and nowhere else
    ssm, name = server.client("ssm"), f"/batchdrop/{stack}/notify"
    param = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert (param["Type"], param["Version"]) == ("SecureString", 1)
    assert json.loads(param["Value"]) == [hooks.good, hooks.failing]
    env = function_environment(server, out["Function"])
    assert env["BATCHDROP_NOTIFY_PARAMETER"] == f"{name}:1"
    body = server.client("cloudformation").get_template(StackName=stack)["TemplateBody"]
    with zipfile.ZipFile(package.path) as zf:
        bundled = zf.read("batchdrop.yaml").decode()
    assert bundled.startswith("# the students example, deployed\n")
    for text in (json.dumps(env), body if isinstance(body, str) else json.dumps(body), bundled):
        assert "127.0.0.1" not in text
        for piece in SECRETS:
            assert piece not in text

    # the inbound bucket notifies the queue: moto's CloudFormation leaves that out, deploy not
    template = body if isinstance(body, dict) else yaml.safe_load(body)
    resolve = Resolver(
        stack, physical_resources(server.client, stack), {"NotifyParameterVersion": "1"}
    )
    s3 = server.client("s3")
    s3.upload_file(str(EXAMPLE / "students.csv"), out["InboundBucket"], "students.csv")

    # the function's work, as its role: the webhooks read from SSM, posted to, not logged
    key, secret = create_user(
        server.client("iam"), f"fn-{unique}", role_policy(template, "Role", resolve)
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    clients.clear_cache()
    (tmp_path / "bundled.yaml").write_text(bundled)
    runtime_env = {**env, "BATCHDROP_CONFIG": str(tmp_path / "bundled.yaml")}
    stats = Worker(Runtime(load_runtime_config(runtime_env)), out["Queue"], wait_seconds=0).run(
        until_empty=True
    )
    assert stats.failed == 0 and stats.deleted == stats.received
    assert [b["receipt"]["file"] for b in hooks.bodies] == ["students.csv"]
    assert any("notification by WebhookNotifier failed" in r.getMessage() for r in caplog.records)
    for piece in SECRETS:
        assert piece not in caplog.text

    # as the deployer again: nothing changed, nothing written; a rotated URL is a new version
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.admin_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.admin_secret)
    clients.clear_cache()
    sc = StackClient(config, poll=0.01, echo=lambda _: None)
    assert not sc.deploy(config, settings, stack, package).changed
    assert ssm.get_parameter(Name=name)["Parameter"]["Version"] == 1
    rotated = example(tmp_path, [hooks.good + "2"])
    redeployed = sc.deploy(rotated, deploy_settings(rotated), stack, package)
    assert redeployed.changed
    param = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert (param["Version"], json.loads(param["Value"])) == (2, [hooks.good + "2"])
    # the stack now passes version 2, which CloudFormation puts in the function's environment
    # (moto updates only the resources whose template text changed, so it is read from there)
    described = server.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    passed = {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}
    assert passed["NotifyParameterVersion"] == "2"

    # destroy takes the parameter with the stack
    sc.destroy(stack, force=True)
    with pytest.raises(ClientError, match="ParameterNotFound"):
        ssm.get_parameter(Name=name)
