"""The template of a config with feeds: one table per feed, each granted only its own writes,
the function's environment pointing each feed at its table, and cfn-lint and checkov clean."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from batchdrop.config import load_config
from batchdrop.deploy.feeds import logical_id
from batchdrop.deploy.settings import deploy_settings
from batchdrop.deploy.template import build_template, statements, to_yaml
from batchdrop.errors import ConfigError

from .feeds_deploy import TABLES, feeds_config, feeds_data, write_feeds

ROOT = Path(__file__).resolve().parents[2]
# checkov pins an old boto3, so `make test` keeps it in a virtualenv of its own (.venv-checkov)
CHECKOV = Path(os.environ.get("CHECKOV") or ROOT / ".venv-checkov" / "bin" / "checkov")
FEED_TABLES = [logical for logical, _, _ in TABLES.values()]
#: deploy settings that, together, switch on every part of the template a feed touches
VARIANTS: dict[str, dict[str, Any]] = {
    "queue-api": {"api": True},
    "direct-provisioned": {
        "trigger": "direct",
        "billing": "provisioned",
        "read_capacity": 2,
        "write_capacity": 3,
    },
    "tracing-versioning": {"tracing": True, "versioning": True, "api": True},
}


def template_for(tmp: Path, deploy: dict[str, Any] | None = None, **changes: Any) -> dict:
    config = feeds_config(tmp, deploy, **changes)
    return build_template(config, deploy_settings(config))


def by_sid(template: dict, role: str = "Role") -> dict[str, dict]:
    return {st["Sid"]: st for r, st in statements(template) if r == role}


def arns_named(node: Any) -> set[str]:
    """The logical ids whose ARN (GetAtt) a piece of a policy names."""
    text = json.dumps(node)
    return set(re.findall(r'"Fn::GetAtt": \["([A-Za-z0-9]+)", "Arn"\]', text))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cfn_lint_reports_nothing(tmp_path: Path, variant: str) -> None:
    body = to_yaml(template_for(tmp_path, VARIANTS[variant]))
    matches = lint(body, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [str(m) for m in matches] == []


def test_checkov_passes_and_every_skip_has_a_reason(tmp_path: Path) -> None:
    if not CHECKOV.exists():
        pytest.fail(
            f"checkov is not installed at {CHECKOV}: `make test` installs it "
            "(make .venv-checkov/bin/checkov), or set CHECKOV to its path"
        )
    out = tmp_path / "templates"
    out.mkdir()
    for name, deploy in VARIANTS.items():
        (tmp_path / name).mkdir()
        (out / f"{name}.yaml").write_text(to_yaml(template_for(tmp_path / name, deploy)))
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    args = ["-d", str(out), "--framework", "cloudformation", "--output", "json", "--skip-download"]
    done = subprocess.run(
        [str(CHECKOV), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        (c["check_id"], c["resource"], c["file_path"])
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert failed == []
    assert done.returncode == 0
    checked = {
        c["resource"].split(".", 1)[-1]
        for r in reports
        for c in r["results"]["passed_checks"] + r["results"]["skipped_checks"]
    }
    assert set(FEED_TABLES) <= checked  # each feed's table was looked at
    for r in reports:
        for c in r["results"]["skipped_checks"]:
            assert len(c["check_result"].get("suppress_comment", "")) > 20, c["check_id"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_wildcard_action_and_no_wildcard_resource_but_xray(tmp_path: Path, variant: str) -> None:
    found = statements(template_for(tmp_path, VARIANTS[variant]))
    assert found
    for role, st in found:
        assert st["Effect"] == "Allow"
        for action in st["Action"]:
            assert "*" not in action, (role, action)
        for resource in st["Resource"]:
            text = json.dumps(resource)
            if resource == "*":  # X-Ray supports no resource-level permissions
                assert set(st["Action"]) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
            elif "*" in text:  # objects under a bucket's prefix, the ledger's indexes
                assert text.endswith(('*"]]}', '"*"]]}', '/*.rejected.csv"]]}')), (role, resource)
                assert not arns_named(resource) & set(FEED_TABLES), (role, resource)


def test_each_feed_has_its_table_with_its_key(tmp_path: Path) -> None:
    t = template_for(tmp_path)
    res = t["Resources"]
    tables = {k for k, v in res.items() if v["Type"] == "AWS::DynamoDB::Table"}
    assert tables == {*FEED_TABLES, "LedgerTable"}  # one ledger for every feed, no "Table"
    for logical, key, types in TABLES.values():
        props = res[logical]["Properties"]
        assert props["KeySchema"] == [{"AttributeName": a, "KeyType": k} for a, k in key]
        assert props["AttributeDefinitions"] == [
            {"AttributeName": a, "AttributeType": types[a]} for a, _ in key
        ]
        assert t["Outputs"][logical] == {"Value": {"Ref": logical}}
    assert "Table" not in t["Outputs"] and "LedgerTable" in t["Outputs"]


def test_feed_tables_have_the_settings_of_a_single_table(tmp_path: Path) -> None:
    """Billing, point-in-time recovery, encryption, deletion policy and checkov's reasons are
    a single config's: only the key differs."""
    from tests.deploy.configs import make_config

    def settings(resource: dict) -> dict:
        out = json.loads(json.dumps(resource))
        del out["Properties"]["KeySchema"], out["Properties"]["AttributeDefinitions"]
        return out

    for deploy in ({}, VARIANTS["direct-provisioned"]):
        (tmp_path / "single").mkdir(exist_ok=True)
        single = make_config(tmp_path / "single", deploy)
        table = build_template(single, deploy_settings(single))["Resources"]["Table"]
        res = template_for(tmp_path, deploy)["Resources"]
        for logical in FEED_TABLES:
            assert settings(res[logical]) == settings(table), logical
    provisioned = template_for(tmp_path, VARIANTS["direct-provisioned"])["Resources"]
    assert provisioned["FeedGradesTable"]["Properties"]["ProvisionedThroughput"] == {
        "ReadCapacityUnits": 2,
        "WriteCapacityUnits": 3,
    }


def test_each_feed_is_granted_its_writes_on_its_own_table_only(tmp_path: Path) -> None:
    t = template_for(tmp_path)
    sids = by_sid(t)
    assert sids["WriteFeedTables"]["Action"] == [
        "dynamodb:BatchWriteItem",  # rows, and a snapshot's deletes (DeleteRequests)
        "dynamodb:DescribeTable",
    ]
    assert arns_named(sids["WriteFeedTables"]["Resource"]) == set(FEED_TABLES)
    # only the feed with only_if_newer puts rows one by one, on its table alone
    assert sids["PutIfNewer"]["Action"] == ["dynamodb:PutItem"]
    assert sids["PutIfNewer"]["Resource"] == [{"Fn::GetAtt": ["FeedGradesTable", "Arn"]}]
    # the snapshot feed's state: removed when the next load replaces it, below the errors
    # location's feeds folder only
    assert sids["RemoveFeedState"]["Action"] == ["s3:DeleteObject"]
    (resource,) = sids["RemoveFeedState"]["Resource"]
    assert json.dumps(resource).endswith('_batchdrop/feeds/*"]]}')
    # no other statement names a feed's table; the ledger is granted as for one table
    for sid, st in sids.items():
        if sid not in ("WriteFeedTables", "PutIfNewer"):
            assert not arns_named(st) & set(FEED_TABLES), sid
    assert arns_named(sids["Ledger"]["Resource"]) == {"LedgerTable"}
    assert "WriteTable" not in sids
    # without only_if_newer anywhere, no table may be written item by item
    plain = by_sid(template_for(tmp_path, modes=False))
    assert "PutIfNewer" not in plain
    assert "RemoveFeedState" not in plain
    assert {a for st in plain.values() for a in st["Action"]} == {
        a for sid, st in sids.items() if sid != "PutIfNewer" for a in st["Action"]
    }


def test_the_api_reads_every_feed_table_and_nothing_else(tmp_path: Path) -> None:
    t = template_for(tmp_path, {"api": True})
    api = by_sid(t, "ApiRole")
    assert {a for st in api.values() for a in st["Action"]} == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "s3:GetObject",  # the rejected-rows reports the runs page streams
    }
    assert api["ReadFeedTables"]["Action"] == ["dynamodb:GetItem", "dynamodb:Query"]
    assert arns_named(api["ReadFeedTables"]["Resource"]) == set(FEED_TABLES)
    assert arns_named(api["ReadLedger"]["Resource"]) == {"LedgerTable"}
    # one route, $default, proxies every path (/feeds/{feed}/... too) to the API's function
    res = t["Resources"]
    routes = [v for v in res.values() if v["Type"] == "AWS::ApiGatewayV2::Route"]
    assert [r["Properties"]["RouteKey"] for r in routes] == ["$default"]
    integration = res["ApiIntegration"]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["IntegrationUri"] == {"Fn::GetAtt": ["ApiFunction", "Arn"]}
    env = res["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert env["BATCHDROP_FEEDS__GRADES__TABLE__URL"] == {
        "Fn::Sub": "dynamodb://${FeedGradesTable}"
    }


def resolved_environment(template: dict, function: str = "Function") -> dict[str, str]:
    """The function's variables with each table's Ref/Sub replaced by a physical name."""
    env = template["Resources"][function]["Properties"]["Environment"]["Variables"]
    out: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(("BATCHDROP_FEEDS__", "BATCHDROP_TABLE__", "BATCHDROP_LEDGER")):
            continue
        if "Ref" in value:
            out[name] = f"stack-{value['Ref']}-X1"
        else:
            out[name] = re.sub(r"\$\{(\w+)\}", r"stack-\1-X1", value["Fn::Sub"])
    return out


def test_the_environment_points_each_feed_of_the_bundled_config_at_its_table(
    tmp_path: Path,
) -> None:
    path = write_feeds(tmp_path)
    config = load_config(path, environ={})
    env = resolved_environment(build_template(config, deploy_settings(config)))
    assert not any(k.startswith("BATCHDROP_TABLE__") for k in env)
    # the function loads the bundled config with these variables: each feed finds its table
    deployed = load_config(path, environ=env)
    found = {f.name: (f.config.table.url, f.config.table.table_name) for f in deployed.feeds}
    assert found == {
        feed: (f"dynamodb://stack-{logical}-X1", f"stack-{logical}-X1")
        for feed, (logical, _, _) in TABLES.items()
    }
    assert {f.config.ledger_url for f in deployed.feeds} == {"dynamodb://stack-LedgerTable-X1"}
    # a table's `name` in the config (the DynamoDB table's name, when given) is replaced too
    assert not [k for k in env if k.endswith("__NAME")]
    text = path.read_text().replace("url: dynamodb://grades", "url: dynamodb://grades\n    name: g")
    named = tmp_path / "named.yaml"
    named.write_text(text)
    config = load_config(named, environ={})
    assert config.feeds[1].config.table.table_name == "g"
    env = resolved_environment(build_template(config, deploy_settings(config)))
    assert [k for k in env if k.endswith("__NAME")] == ["BATCHDROP_FEEDS__GRADES__TABLE__NAME"]
    grades = load_config(named, environ=env).feeds[1].config.table
    assert grades.table_name == "stack-FeedGradesTable-X1"


def many_feeds(count: int, length: int) -> dict[str, Any]:
    data = feeds_data()
    one = data["feeds"][0]
    data["feeds"] = [
        {**one, "name": f"f{i:03d}".ljust(length, "x"), "match": {"prefix": f"f{i}/"}}
        for i in range(count)
    ]
    for i, feed in enumerate(data["feeds"]):
        feed["table"] = {**one["table"], "url": f"dynamodb://t{i}"}
    return data


def test_an_environment_lambda_would_refuse_is_a_config_error(tmp_path: Path) -> None:
    """Each feed's table is a variable, and Lambda takes 4 KB of them: the template says so
    before CloudFormation fails at the function and rolls the stack back."""
    (tmp_path / "ok.yaml").write_text(json.dumps(many_feeds(20, 12)))
    config = load_config(tmp_path / "ok.yaml", environ={})
    t = build_template(config, deploy_settings(config))
    assert len([k for k in t["Resources"] if k.startswith("Feed")]) == 20
    (tmp_path / "big.yaml").write_text(json.dumps(many_feeds(30, 24)))
    config = load_config(tmp_path / "big.yaml", environ={})
    with pytest.raises(ConfigError) as caught:
        build_template(config, deploy_settings(config))
    assert caught.value.key == "feeds"
    assert "with 30 feeds the function's environment may reach" in str(caught.value)
    assert "more than the 4096 Lambda takes" in str(caught.value)


def test_the_notification_is_one_set_of_rules_for_the_inbound_prefix(tmp_path: Path) -> None:
    """Feeds are told apart by the function, not by S3: every file under the inbound prefix
    is sent to it (a file matching no feed gets its receipt there)."""
    note = template_for(tmp_path)["Resources"]["InboundBucket"]["Properties"]
    rules = [
        c["Filter"]["S3Key"]["Rules"]
        for c in note["NotificationConfiguration"]["QueueConfigurations"]
    ]
    assert rules == [
        [{"Name": "prefix", "Value": "incoming/"}, {"Name": "suffix", "Value": ".csv"}],
        [{"Name": "prefix", "Value": "incoming/"}, {"Name": "suffix", "Value": ".csv.gz"}],
    ]


def test_the_notification_takes_every_feed_suffix_without_overlaps(tmp_path: Path) -> None:
    data = feeds_data()
    data["feeds"][1]["suffix"] = ".txt"
    data["feeds"][2]["suffix"] = ".fees.csv"  # already covered by .csv: S3 refuses overlaps
    (tmp_path / "c.yaml").write_text(json.dumps(data))
    config = load_config(tmp_path / "c.yaml", environ={})
    t = build_template(config, deploy_settings(config, trigger="direct"))
    note = t["Resources"]["InboundBucket"]["Properties"]["NotificationConfiguration"]
    suffixes = [c["Filter"]["S3Key"]["Rules"][1]["Value"] for c in note["LambdaConfigurations"]]
    assert suffixes == [".csv", ".csv.gz", ".txt", ".txt.gz"]
    assert lint(to_yaml(t), config=ManualArgs(regions=["us-east-1"])) == []


def test_a_sqlite_feed_cannot_be_deployed_and_the_error_names_it(tmp_path: Path) -> None:
    path = write_feeds(tmp_path)
    path.write_text(path.read_text().replace("dynamodb://fees", "sqlite:///fees.db"))
    config = load_config(path, environ={})
    with pytest.raises(ConfigError) as caught:
        build_template(config, deploy_settings(config))
    message = str(caught.value)
    assert caught.value.key == "feeds[2] (late-fees).table.url"
    assert "feed 'late-fees' loads into sqlite:///" in message
    assert "DynamoDB tables only" in message and str(path) in message


def test_the_cli_says_so_in_one_line_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from batchdrop.cli import main

    path = write_feeds(tmp_path)
    path.write_text(path.read_text().replace("dynamodb://grades", "sqlite:///grades.db"))
    monkeypatch.setattr(sys, "argv", ["batchdrop", "--config", str(path), "template"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("batchdrop: error: ") and "Traceback" not in out.err
    assert "feeds[1] (grades).table.url: feed 'grades' loads into sqlite:///" in out.err
    assert len(out.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("first", "second", "shared"),
    [
        ("late-fees", "late_fees", "variables BATCHDROP_FEEDS__LATE_FEES__"),
        ("marks", "Marks", "variables BATCHDROP_FEEDS__MARKS__"),
        ("ab", "a_b", "table FeedABTable"),
    ],
)
def test_feeds_that_would_share_a_name_in_the_stack_are_refused(
    tmp_path: Path, first: str, second: str, shared: str
) -> None:
    raw = feeds_data()
    raw["feeds"][0]["name"], raw["feeds"][2]["name"] = first, second
    (tmp_path / "c.yaml").write_text(json.dumps(raw))
    config = load_config(tmp_path / "c.yaml", environ={})
    with pytest.raises(ConfigError) as caught:
        build_template(config, deploy_settings(config))
    assert caught.value.key == f"feeds[2] ({second}).name"
    assert f"feed {second!r} and feed {first!r} would share the stack's {shared}" in str(
        caught.value
    )


def test_logical_ids_are_stable_valid_and_apart_from_the_stack_s_own() -> None:
    assert logical_id("grades") == "FeedGradesTable"
    assert logical_id("late-fees") == "FeedLateFeesTable"
    assert logical_id("x2_y-z") == "FeedX2YZTable"
    single_ids = {"Table", "LedgerTable", "Function", "Role", "Queue", "Topic", "LogGroup"}
    for name in ("grades", "late-fees", "Table", "ledger", "a", "Z9"):
        assert re.fullmatch(r"Feed[A-Za-z0-9]+Table", logical_id(name))
        assert logical_id(name) not in single_ids


def test_a_config_without_feeds_keeps_its_one_table(tmp_path: Path) -> None:
    from tests.deploy.configs import make_config

    config = make_config(tmp_path, {"api": True})
    t = build_template(config, deploy_settings(config))
    res = t["Resources"]
    assert not [k for k in res if k.startswith("Feed")]
    assert by_sid(t)["WriteTable"]["Resource"] == [{"Fn::GetAtt": ["Table", "Arn"]}]
    assert by_sid(t, "ApiRole")["ReadTable"]["Resource"] == [{"Fn::GetAtt": ["Table", "Arn"]}]
    env = res["Function"]["Properties"]["Environment"]["Variables"]
    assert env["BATCHDROP_TABLE__URL"] == {"Fn::Sub": "dynamodb://${Table}"}
    assert not [k for k in env if k.startswith("BATCHDROP_FEEDS__")]
    assert t["Description"] == "batchdrop: CSV files into students (queue trigger)"


def test_the_package_bundles_every_feed(tmp_path: Path) -> None:
    from batchdrop.config import parse_config
    from batchdrop.deploy.package import config_text

    path = write_feeds(tmp_path)
    bundled = tmp_path / "bundled.yaml"
    bundled.write_text(config_text(load_config(path, environ={})))
    assert [f.name for f in load_config(bundled, environ={}).feeds] == list(TABLES)
    # without its file, a feed's config is only that feed: it is not packaged as the whole
    unfiled = parse_config(feeds_data(), source="feeds", environ={})
    with pytest.raises(ConfigError, match="a config with feeds is packaged from its file"):
        config_text(unfiled)


def test_a_config_with_feeds_names_its_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from batchdrop.cli import main

    named = feeds_config(tmp_path, {"stack_name": "school"})
    assert deploy_settings(named).resolved_stack_name(named) == "school"
    path = write_feeds(tmp_path)
    monkeypatch.setattr(sys, "argv", ["batchdrop", "--config", str(path), "destroy", "--yes"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "deploy.stack_name: a config with feeds names its stack: set deploy.stack_name" in err
    assert "Traceback" not in err


def test_feeds_naming_one_table_share_it_in_the_stack(tmp_path: Path) -> None:
    """Two kinds of file into one table, as they do locally: one table in the stack too."""
    data = feeds_data()
    more = {**data["feeds"][0], "name": "transfers", "match": {"prefix": "transfers/"}}
    data["feeds"].append({**more, "only_if_newer": "fname"})
    (tmp_path / "c.yaml").write_text(json.dumps(data))
    config = load_config(tmp_path / "c.yaml", environ={})
    t = build_template(config, deploy_settings(config))
    tables = [k for k, v in t["Resources"].items() if v["Type"] == "AWS::DynamoDB::Table"]
    assert tables == [*FEED_TABLES, "LedgerTable"]
    env = t["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert env["BATCHDROP_FEEDS__TRANSFERS__TABLE__URL"] == {
        "Fn::Sub": "dynamodb://${FeedStudentsTable}"
    }
    sids = by_sid(t)
    assert arns_named(sids["PutIfNewer"]["Resource"]) == {"FeedGradesTable", "FeedStudentsTable"}
    assert [k for k in t["Outputs"] if k.startswith("Feed")] == FEED_TABLES
    # one table has one key
    data["feeds"][-1]["table"] = {"url": "dynamodb://students", "partition_key": "student_id"}
    (tmp_path / "c.yaml").write_text(json.dumps(data))
    config = load_config(tmp_path / "c.yaml", environ={})
    with pytest.raises(ConfigError) as caught:
        build_template(config, deploy_settings(config))
    assert caught.value.key == "feeds[3] (transfers).table"
    assert (
        "feed 'transfers' loads into the table of feed 'students' (students) with another key"
        in (str(caught.value))
    )
