"""``deploy`` leaves the inbound bucket notifying what the template declares, on an emulator
whose CloudFormation ignores a bucket's NotificationConfiguration (moto), and says so once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from batchdrop.cli import cli
from batchdrop.config import load_config
from batchdrop.deploy.stack import StackClient

from .configs import write_config
from .test_deploy_e2e import NO_NOTIFICATION, bucket_notification

pytestmark = pytest.mark.aws


def client(name: str) -> Any:
    return boto3.client(name, region_name="us-east-1")


def deploy(config: Path, stack: str, package: Path) -> Any:
    return CliRunner().invoke(
        cli, ["--config", str(config), "deploy", "--stack", stack, "--package", str(package)]
    )


def expected(trigger: str, outputs: dict[str, str]) -> dict[str, Any]:
    """Every ObjectCreated event under the config's prefix (incoming/), for .csv and .csv.gz,
    to the stack's queue or function."""
    if trigger == "queue":
        arn = client("sqs").get_queue_attributes(
            QueueUrl=outputs["Queue"], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        key, arn_key = "QueueConfigurations", "QueueArn"
    else:
        arn = client("lambda").get_function(FunctionName=outputs["Function"])["Configuration"][
            "FunctionArn"
        ]
        key, arn_key = "LambdaFunctionConfigurations", "LambdaFunctionArn"
    return {
        key: [
            {
                arn_key: arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {
                    "Key": {
                        "FilterRules": [
                            {"Name": "prefix", "Value": "incoming/"},
                            {"Name": "suffix", "Value": suffix},
                        ]
                    }
                },
            }
            for suffix in (".csv", ".csv.gz")
        ]
    }


def outputs_of(config: Path, stack: str) -> dict[str, str]:
    return StackClient(load_config(config, environ={}), echo=lambda _: None).outputs(stack)


@pytest.mark.parametrize("trigger", ["queue", "direct"])
def test_deploy_applies_the_notification_once_and_then_says_nothing(
    aws_env: str, tmp_path: Path, unique: str, trigger: str
) -> None:
    path = write_config(tmp_path, {"trigger": trigger})
    package = tmp_path / "fn.zip"
    made = CliRunner().invoke(
        cli, ["--config", str(path), "package", "-o", str(package), "--without-dependencies"]
    )
    assert made.exit_code == 0, made.output
    stack = f"note-{unique}"

    first = deploy(path, stack, package)
    assert first.exit_code == 0, first.output
    assert first.output.count(NO_NOTIFICATION) == 1, first.output
    out = outputs_of(path, stack)
    want = expected(trigger, out)
    assert bucket_notification(client("s3"), out["InboundBucket"]) == want

    second = deploy(path, stack, package)
    assert second.exit_code == 0, second.output
    assert "up to date: no changes" in second.output
    assert "notification" not in second.output
    assert bucket_notification(client("s3"), out["InboundBucket"]) == want


def test_a_notification_that_lost_a_rule_is_put_back(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    path = write_config(tmp_path)
    package = tmp_path / "fn.zip"
    CliRunner().invoke(
        cli, ["--config", str(path), "package", "-o", str(package), "--without-dependencies"]
    )
    stack = f"note-{unique}"
    assert deploy(path, stack, package).exit_code == 0
    out = outputs_of(path, stack)
    want = expected("queue", out)
    s3 = client("s3")
    s3.put_bucket_notification_configuration(
        Bucket=out["InboundBucket"],
        NotificationConfiguration={"QueueConfigurations": want["QueueConfigurations"][:1]},
    )

    again = deploy(path, stack, package)
    assert again.exit_code == 0, again.output
    assert "the inbound bucket's notification was not the template's: applied" in again.output
    assert bucket_notification(s3, out["InboundBucket"]) == want


def test_a_deployer_who_may_not_read_the_notification_is_told_and_the_deploy_goes_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from botocore.stub import Stubber

    from batchdrop.deploy.notification import ensure_notification
    from batchdrop.deploy.settings import deploy_settings
    from batchdrop.deploy.template import build_template

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    config = load_config(write_config(tmp_path), environ={})
    template = build_template(config, deploy_settings(config))
    s3 = boto3.session.Session(region_name="us-east-1").client("s3")
    lines: list[str] = []
    with Stubber(s3) as stub:
        stub.add_client_error(
            "get_bucket_notification_configuration", "AccessDenied", http_status_code=403
        )
        applied = ensure_notification(
            lambda service: s3, template, {"InboundBucket": "in-bucket", "Queue": "q"}, lines.append
        )
        stub.assert_no_pending_responses()  # and nothing was put
    assert not applied
    assert lines == [
        "note: could not read the notification of in-bucket (AccessDenied); the deployer "
        "needs s3:GetBucketNotification to check it"
    ]
