"""The alarms and the dashboard of a stack deployed to the moto server: ``deploy
--alarm-email`` subscribes the address to the alarms' topic, the dashboard names the metrics,
its URL is an output, and each alarm, made with the template's properties, watches its metric
with its threshold and notifies the topic."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from batchdrop.cli import cli
from batchdrop.config import load_config
from batchdrop.deploy.alarms import monitored_template
from batchdrop.deploy.settings import deploy_settings

from .configs import write_config

pytestmark = pytest.mark.aws
REGION, ACCOUNT = "us-east-1", "123456789012"


def client(name: str) -> Any:
    return boto3.client(name, region_name=REGION)


def resolver(stack: str, physical: dict[str, str]) -> Any:
    """Resolve Ref, Fn::GetAtt (a queue's name) and Fn::Sub as CloudFormation would for the
    stack's resources (``physical``: logical id → physical id)."""

    def value(name: str) -> str:
        if "." in name:  # ${Queue.QueueName}: a queue's physical id is its URL
            logical, attr = name.split(".")
            assert attr == "QueueName", name
            return physical[logical].rsplit("/", 1)[-1]
        pseudo = {"AWS::StackName": stack, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
        return pseudo.get(name) or physical[name]

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(n) for n in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"}:
            return value(node["Ref"])
        if set(node) == {"Fn::GetAtt"}:
            return value(".".join(node["Fn::GetAtt"]))
        if set(node) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: value(m[1]), node["Fn::Sub"])
        return {k: resolve(v) for k, v in node.items()}

    return resolve


def test_deployed_stack_has_its_alarms_topic_and_dashboard(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    path = write_config(tmp_path, {"alarm_thresholds": {"oldest_event_age_s": 900}})
    zip_path = tmp_path / "fn.zip"
    runner = CliRunner()
    assert (
        runner.invoke(
            cli, ["--config", str(path), "package", "-o", str(zip_path), "--without-dependencies"]
        ).exit_code
        == 0
    )
    stack = f"alarms-{unique}"
    result = runner.invoke(
        cli,
        ["--config", str(path), "deploy", "--stack", stack, "--package", str(zip_path),
         "--alarm-email", "oncall@example.com"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = dict(re.findall(r"^(\w+) +(\S+)$", result.output, re.M))
    topic = out["AlarmTopic"]
    assert topic.startswith(f"arn:aws:sns:{REGION}:{ACCOUNT}:") and topic != out["Topic"]
    subs = client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [("email", "oncall@example.com")]
    receipts = client("sns").list_subscriptions_by_topic(TopicArn=out["Topic"])["Subscriptions"]
    assert receipts == []  # the on-call address gets alarms, not every receipt

    # the dashboard, named after the stack, with the loads', queues' and tables' metrics
    body = json.loads(client("cloudwatch").get_dashboard(DashboardName=stack)["DashboardBody"])
    text = json.dumps(body)
    for metric in ("RowsLoaded", "RowsRejected", "FilesFailed", "Duration", "WriteThrottleEvents"):
        assert f'"{metric}"' in text
    resources = client("cloudformation").describe_stack_resources(StackName=stack)
    physical = {  # (the resources moto's CloudFormation does not make have no ids)
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in resources["StackResources"]
        if r.get("LogicalResourceId")
    }
    queue_name = physical["Queue"].rsplit("/", 1)[-1]
    assert f'"QueueName", "{queue_name}"' in text  # ${Queue.QueueName} resolved
    assert f'"FunctionName", "{physical["Function"]}"' in text
    assert f'"TableName", "{physical["Table"]}"' in text and "${" not in text
    alarm_widget = next(w for w in body["widgets"] if w["type"] == "alarm")
    assert (
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{stack}-dead-letters"
        in (alarm_widget["properties"]["alarms"])
    )

    # moto's CloudFormation does not make AWS::CloudWatch::Alarm (moto 5.2): each alarm is
    # made here with the template's properties, resolved to the stack's resources, through
    # PutMetricAlarm (the call CloudFormation makes, validated by botocore's model)
    config = load_config(path, environ={})
    settings = deploy_settings(config, alarm_email="oncall@example.com")
    template = monitored_template(config, settings)
    resolve = resolver(stack, physical)
    # moto reports no outputs for a stack made through a change set (the deploy reads them
    # from the resources of the same logical id): the URL is checked as the template says it
    assert physical["Dashboard"] == stack
    assert resolve(template["Outputs"]["DashboardUrl"]["Value"]) == (
        f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}"
        f"#dashboards/dashboard/{stack}"
    )
    cw = client("cloudwatch")
    for res in template["Resources"].values():
        if res["Type"] == "AWS::CloudWatch::Alarm":
            cw.put_metric_alarm(**resolve(res["Properties"]))
    alarms = {
        a["AlarmName"].removeprefix(f"{stack}-"): a
        for a in cw.describe_alarms(AlarmNamePrefix=f"{stack}-")["MetricAlarms"]
    }
    assert sorted(alarms) == [
        "dead-letters",
        "failed-files",
        "function-errors",
        "function-throttles",
        "oldest-event",
        "throttled-writes-ledger",
        "throttled-writes-table",
    ]
    for name, a in alarms.items():
        assert a["AlarmActions"] == [topic] and a["OKActions"] == [topic], name
        assert a["TreatMissingData"] == "notBreaching"
    dlq_name = physical["DeadLetterQueue"].rsplit("/", 1)[-1]
    assert (alarms["dead-letters"]["MetricName"], alarms["dead-letters"]["Threshold"]) == (
        "ApproximateNumberOfMessagesVisible",
        0.0,
    )
    assert alarms["dead-letters"]["Dimensions"] == [{"Name": "QueueName", "Value": dlq_name}]
    assert alarms["oldest-event"]["Threshold"] == 900.0
    assert alarms["oldest-event"]["Dimensions"] == [{"Name": "QueueName", "Value": queue_name}]
    assert (alarms["failed-files"]["Namespace"], alarms["failed-files"]["MetricName"]) == (
        "batchdrop",
        "FilesFailed",
    )
    assert alarms["throttled-writes-ledger"]["Dimensions"] == [
        {"Name": "TableName", "Value": physical["LedgerTable"]}
    ]
    assert alarms["function-errors"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": physical["Function"]}
    ]
