"""The stack's alarms and dashboard in the template: cfn-lint and checkov clean, each alarm on
the metric the runtime really records (the handler's embedded metrics, with and without feeds),
its threshold from the settings, its missing data decided, its actions on the alarm topic."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from batchdrop.config import Config, parse_config
from batchdrop.deploy import alarms as monitoring
from batchdrop.deploy import metrics
from batchdrop.deploy.alarms import MAX_ALARM_METRICS, monitored_template
from batchdrop.deploy.settings import deploy_settings
from batchdrop.deploy.template import to_yaml
from batchdrop.errors import ConfigError

from ..unit.feeds_deploy import feeds_config, feeds_data
from .configs import make_config

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = Path(os.environ.get("CHECKOV") or ROOT / ".venv-checkov" / "bin" / "checkov")
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ops-pager"
#: deploy settings (and "_feeds" for the three feeds' config) covering every switch of the alarms
VARIANTS: dict[str, dict[str, Any]] = {
    "queue": {},
    "direct": {"trigger": "direct"},
    "sequential-email": {"sequential": True, "alarm_email": "ops@example.com"},
    "own-topic-thresholds": {
        "alarm_topic": TOPIC,
        "alarm_thresholds": {"failed_files": 3, "oldest_event_age_s": 600, "period_s": 60},
    },
    "no-alarms": {"alarms": False},
    "feeds": {"_feeds": True, "api": True},
    "feeds-direct": {"_feeds": True, "trigger": "direct", "billing": "provisioned"},
}


def template_for(tmp: Path, deploy: dict[str, Any]) -> dict[str, Any]:
    deploy = dict(deploy)
    config = feeds_config(tmp, deploy) if deploy.pop("_feeds", False) else make_config(tmp, deploy)
    return monitored_template(config, deploy_settings(config))


def by_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def alarm_props(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each alarm's properties, by its name less the stack's."""
    out = {}
    for r in by_type(template, "AWS::CloudWatch::Alarm").values():
        props = r["Properties"]
        out[props["AlarmName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")] = props
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cfn_lint_reports_nothing(tmp_path: Path, variant: str) -> None:
    body = to_yaml(template_for(tmp_path, VARIANTS[variant]))
    matches = lint(body, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [str(m) for m in matches] == []


def test_checkov_passes_and_every_skip_has_a_reason(tmp_path: Path) -> None:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: `make test` installs it")
    out = tmp_path / "templates"
    out.mkdir()
    for name, deploy in VARIANTS.items():
        (tmp_path / name).mkdir()
        (out / f"{name}.yaml").write_text(to_yaml(template_for(tmp_path / name, deploy)))
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    args = ["-d", str(out), "--framework", "cloudformation", "--output", "json", "--skip-download"]
    done = subprocess.run(
        [str(CHECKOV), *args], capture_output=True, text=True, env=env, check=False
    )
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        (c["check_id"], c["resource"]) for r in reports for c in r["results"]["failed_checks"]
    ]
    assert failed == []
    checked = {
        c["resource"].split(".", 1)[-1]
        for r in reports
        for c in r["results"]["passed_checks"] + r["results"]["skipped_checks"]
    }
    assert {"AlarmTopic", "DeadLetterAlarm", "Dashboard"} & checked  # the new resources seen
    for r in reports:
        for c in r["results"]["skipped_checks"]:
            assert len(c["check_result"].get("suppress_comment", "")) > 20, c["check_id"]


def test_queue_trigger_alarms_metrics_thresholds_and_topic(tmp_path: Path) -> None:
    t = template_for(tmp_path, {})
    found = alarm_props(t)
    assert sorted(found) == [
        "dead-letters",
        "failed-files",
        "function-errors",
        "function-throttles",
        "oldest-event",
        "throttled-writes-ledger",
        "throttled-writes-table",
    ]
    watched = {n: (p["Namespace"], p["MetricName"], p["Statistic"]) for n, p in found.items()}
    assert watched == {
        "dead-letters": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum"),
        "failed-files": ("batchdrop", "FilesFailed", "Sum"),
        "function-errors": ("AWS/Lambda", "Errors", "Sum"),
        "function-throttles": ("AWS/Lambda", "Throttles", "Sum"),
        "oldest-event": ("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum"),
        "throttled-writes-ledger": ("AWS/DynamoDB", "WriteThrottleEvents", "Sum"),
        "throttled-writes-table": ("AWS/DynamoDB", "WriteThrottleEvents", "Sum"),
    }
    dims = {n: p["Dimensions"] for n, p in found.items()}
    assert dims["dead-letters"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]
    assert dims["oldest-event"][0]["Value"] == {"Fn::GetAtt": ["Queue", "QueueName"]}
    assert dims["failed-files"] == [{"Name": "service", "Value": "batchdrop"}]
    assert dims["function-errors"] == [{"Name": "FunctionName", "Value": {"Ref": "Function"}}]
    assert dims["throttled-writes-table"] == [{"Name": "TableName", "Value": {"Ref": "Table"}}]
    assert dims["throttled-writes-ledger"] == [
        {"Name": "TableName", "Value": {"Ref": "LedgerTable"}}
    ]
    for name, p in found.items():
        assert p["AlarmActions"] == p["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert p["ComparisonOperator"] == "GreaterThanThreshold"
        assert p["TreatMissingData"] == "notBreaching"
        assert p["Period"] == 300 and p["EvaluationPeriods"] == 1
        assert "batchdrop" in p["AlarmDescription"]
    assert {n: p["Threshold"] for n, p in found.items()}["oldest-event"] == 3600
    assert {p["Threshold"] for n, p in found.items() if n != "oldest-event"} == {0}
    # the alarms' own topic: the receipts topic's AWS managed key would refuse CloudWatch
    topic = t["Resources"]["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic" and "KmsMasterKeyId" not in topic["Properties"]
    assert "KmsMasterKeyId" in t["Resources"]["Topic"]["Properties"]
    assert t["Outputs"]["AlarmTopic"] == {"Value": {"Ref": "AlarmTopic"}}
    assert "Subscription" not in topic["Properties"]


def test_settings_change_thresholds_topic_and_what_is_made(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    own = template_for(tmp_path / "a", VARIANTS["own-topic-thresholds"])
    found = alarm_props(own)
    assert found["failed-files"]["Threshold"] == 3
    assert found["oldest-event"]["Threshold"] == 600
    assert {p["Period"] for p in found.values()} == {60}
    assert {json.dumps(p["AlarmActions"]) for p in found.values()} == {json.dumps([TOPIC])}
    assert "AlarmTopic" not in own["Resources"]
    assert own["Outputs"]["AlarmTopic"] == {"Value": TOPIC}

    (tmp_path / "b").mkdir()
    email = template_for(tmp_path / "b", VARIANTS["sequential-email"])
    subs = email["Resources"]["AlarmTopic"]["Properties"]["Subscription"]
    assert subs == [{"Protocol": "email", "Endpoint": "ops@example.com"}]
    # one file at a time is throttling by design: no throttles alarm then
    assert "function-throttles" not in alarm_props(email)

    (tmp_path / "c").mkdir()
    direct = alarm_props(template_for(tmp_path / "c", VARIANTS["direct"]))
    assert (direct["oldest-event"]["Namespace"], direct["oldest-event"]["MetricName"]) == (
        "AWS/Lambda",
        "AsyncEventAge",
    )
    assert "dead-letters" in direct

    (tmp_path / "d").mkdir()
    off = template_for(tmp_path / "d", {"alarms": False})
    assert by_type(off, "AWS::CloudWatch::Alarm") == {}
    assert "AlarmTopic" not in off["Resources"] and "AlarmTopic" not in off["Outputs"]
    assert "Dashboard" in off["Resources"]
    (tmp_path / "e").mkdir()
    none = template_for(tmp_path / "e", {"dashboard": False})
    assert "Dashboard" not in none["Resources"] and "DashboardUrl" not in none["Outputs"]


def test_monitoring_added_twice_is_the_same_template(tmp_path: Path) -> None:
    config = feeds_config(tmp_path, {"alarm_email": "ops@example.com"})
    settings = deploy_settings(config)
    once = monitored_template(config, settings)
    twice = monitoring.add_monitoring(json.loads(json.dumps(once)), config, settings)
    assert twice == once


@pytest.mark.parametrize(
    ("deploy", "message"),
    [
        (
            {"alarms": False, "alarm_email": "a@example.com"},
            "deploy.alarm_email: the alarms are off",
        ),
        (
            {"alarm_topic": TOPIC, "alarm_email": "a@example.com"},
            "deploy.alarm_email: the alarms go to alarm_topic",
        ),
        ({"alarm_topic": "ops-pager"}, "deploy.alarm_topic: 'ops-pager' is not an SNS topic ARN"),
        ({"alarm_email": "nobody"}, "deploy.alarm_email: 'nobody' is not an email address"),
        (
            {"alarm_thresholds": {"failed_file": 2}},
            "deploy.alarm_thresholds.failed_file: is not a deploy setting (allowed: "
            "dead_letter_messages, failed_files,",
        ),
        (
            {"alarm_thresholds": {"period_s": 90}},
            "deploy.alarm_thresholds.period_s: must be a multiple of 60",
        ),
    ],
)
def test_bad_alarm_settings_name_the_key(
    tmp_path: Path, deploy: dict[str, Any], message: str
) -> None:
    config = make_config(tmp_path, deploy)
    with pytest.raises(ConfigError) as e:
        deploy_settings(config)
    assert message in str(e.value)


# --- the alarms watch what the runtime records ----------------------------------------------


def emitted(capsys: pytest.CaptureFixture[str]) -> list[tuple[str, frozenset[tuple[str, str]]]]:
    """(metric, its dimensions) of every embedded metric the handler printed."""
    out = []
    for line in capsys.readouterr().out.splitlines():
        if not line.startswith("{") or "_aws" not in line:
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == metrics.NAMESPACE
            for dims in directive["Dimensions"]:
                for m in directive["Metrics"]:
                    out.append((m["Name"], frozenset((d, doc[d]) for d in dims)))
    return out


def alarm_dimension_sets(template: dict[str, Any], metric: str) -> set[frozenset[tuple[str, str]]]:
    """The dimension sets of ``metric`` that the template's alarms watch (metric math or not)."""
    found = set()
    for p in alarm_props(template).values():
        queries = p.get("Metrics") or [
            {"MetricStat": {"Metric": {k: p[k] for k in ("MetricName", "Dimensions")}}}
        ]
        for q in queries:
            m = q.get("MetricStat", {}).get("Metric")
            if m and m["MetricName"] == metric:
                found.add(frozenset((d["Name"], d["Value"]) for d in m["Dimensions"]))
    return found


class _Failing:
    """A router whose files fail: with a receipt (``status: failed``) or before one."""

    suffixes = (".csv",)

    def __init__(self, config: Config, named: bool):
        self.config, self.named = config, named

    def recover(self) -> list[Any]:
        return []

    def process(self, name: str, **_: Any) -> Any:
        from batchdrop.errors import TransientError
        from batchdrop.report import Receipt

        if name.startswith("crash"):
            raise TransientError("the table is throttled")
        receipt = Receipt(file=name, source=name, version="v1", size=1)
        receipt.status, receipt.feed = "failed", "grades" if self.named else None
        return receipt


@pytest.mark.parametrize("with_feeds", [False, True])
def test_failed_files_alarm_watches_every_way_the_handler_counts_a_failed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], with_feeds: bool
) -> None:
    pytest.importorskip("aws_lambda_powertools")
    from batchdrop.aws import handler
    from batchdrop.aws.events import ObjectCreated

    if with_feeds:
        config = feeds_config(tmp_path, {"stack_name": "school"})
    else:
        config = make_config(tmp_path)
    template = monitored_template(config, deploy_settings(config))
    runtime = handler.Runtime(config, router=_Failing(config, with_feeds))
    capsys.readouterr()
    handler.metrics.clear_metrics()
    for key in ("incoming/grades_1.csv", "incoming/crash.csv"):
        runtime.process(ObjectCreated("in", key), None)
    handler.metrics.flush_metrics()
    failed = {dims for name, dims in emitted(capsys) if name == "FilesFailed"}
    assert len(failed) == (2 if with_feeds else 1)  # a receipt's, and a failure before one
    assert failed <= alarm_dimension_sets(template, "FilesFailed")
    assert metrics.NO_FEED == handler.NO_FEED
    assert set(metrics.FILE_METRICS) <= set(handler.METRIC_NAMES.values())


def test_many_feeds_split_the_failed_files_alarm_at_ten_metrics(tmp_path: Path) -> None:
    data = feeds_data(modes=False)
    first = data["feeds"][0]
    data["feeds"] = [
        {**first, "name": f"f{i}", "match": {"prefix": f"f{i}/"}, "table": {**first["table"]}}
        for i in range(12)
    ]
    config = parse_config({**data, "deploy": {"stack_name": "many"}}, source="test", environ={})
    t = monitored_template(config, deploy_settings(config))
    parts = {n: p for n, p in alarm_props(t).items() if n.startswith("failed-files")}
    assert sorted(parts) == ["failed-files", "failed-files-2"]
    watched = []
    for p in parts.values():
        stats = [q for q in p["Metrics"] if "MetricStat" in q]
        assert len(stats) <= MAX_ALARM_METRICS
        (total,) = [q for q in p["Metrics"] if q.get("ReturnData")]
        assert total["Expression"] == f"SUM([{','.join(q['Id'] for q in stats)}])"
        watched += [json.dumps(q["MetricStat"]["Metric"]["Dimensions"]) for q in stats]
    # [service] alone, each of the 12 feeds, and (none): each summed once
    assert len(watched) == len(set(watched)) == 14
    lint_matches = lint(to_yaml(t), config=ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in lint_matches] == []


# --- the dashboard --------------------------------------------------------------------------


def dashboard(template: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The dashboard's body, and the names its Fn::Sub refers to."""
    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return json.loads(body), set(re.findall(r"\$\{([^}]+)\}", body))


@pytest.mark.parametrize("variant", ["queue", "direct", "feeds", "no-alarms"])
def test_dashboard_shows_loads_queue_function_and_tables(tmp_path: Path, variant: str) -> None:
    t = template_for(tmp_path, VARIANTS[variant])
    body, names = dashboard(t)
    for name in names:  # every ${…} is a resource of the stack (or its attribute) or a pseudo one
        logical = name.split(".")[0]
        assert logical in t["Resources"] or logical.startswith("AWS::"), name
    text = json.dumps(body)
    for metric in (
        "RowsLoaded",
        "RowsRejected",
        "FilesLoaded",
        "FilesRejected",
        "FilesFailed",
        "Duration",
        "FileBytes",
        "ApproximateNumberOfMessagesVisible",
        "ConsumedWriteCapacityUnits",
        "WriteThrottleEvents",
        "Errors",
    ):
        assert f'"{metric}"' in text, metric
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert "Throughput (rows loaded a second)" in titles and "Dead-letter queue" in titles
    assert ("Events queue" in titles) == (VARIANTS[variant].get("trigger") != "direct")
    assert ("Alarms" in titles) == (variant != "no-alarms")
    if variant == "feeds":
        assert '"Feed","grades"' in json.dumps(body, separators=(",", ":"))
        assert {"FeedStudentsTable", "FeedGradesTable", "FeedLateFeesTable", "LedgerTable"} <= names
    url = t["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert url.endswith("#dashboards/dashboard/${Dashboard}") and "${AWS::Region}" in url
    assert t["Resources"]["Dashboard"]["Properties"]["DashboardName"] == {
        "Fn::Sub": "${AWS::StackName}"
    }
