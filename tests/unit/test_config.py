from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchdrop.config import load_config, parse_config
from batchdrop.errors import ConfigError

BASE: dict[str, Any] = {
    "inbound": "in",
    "archive": "arc",
    "errors": "err",
    "table": {"url": "sqlite:///t.db", "partition_key": "id", "sort_key": "at"},
    "schema": {
        "fields": [{"name": "id"}, {"name": "at", "type": "date"}, {"name": "n", "type": "integer"}]
    },
}


def parse(**changes: Any) -> Any:
    data = {**BASE, **changes}
    return parse_config(data, source="t.yaml", environ={})


def error(**changes: Any) -> str:
    with pytest.raises(ConfigError) as e:
        parse(**changes)
    assert e.value.exit_code == 2
    return str(e.value)


def test_defaults_are_the_documented_ones() -> None:
    c = parse()
    assert (c.on_error, c.duplicates, c.suffix, c.extra_columns) == (
        "reject_file",
        "last_wins",
        ".csv",
        "reject",
    )
    assert c.schema_.missing_values == [""]
    assert c.notify == ["console"]
    assert c.key == ("id", "at") and c.ledger_url == "sqlite:///t.db"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"on_error": "skip"}, "t.yaml: on_error: got 'skip'; Input should be 'reject_file' or"),
        ({"duplicates": "x"}, "duplicates: got 'x'"),
        (
            {"table": {"url": "mysql://x", "partition_key": "id"}},
            "table.url: must be sqlite:///path/to/file.db or dynamodb://TABLE_NAME",
        ),
        (
            {"table": {"url": "sqlite:///t.db", "partition_key": "nope"}},
            "table.partition_key 'nope' is not a field of the schema (fields: id, at, n)",
        ),
        ({"max_rejected": "ten"}, "max_rejected: must be a count (e.g. 100) or a percentage"),
        ({"notify": ["slack"]}, "notify: 'slack' is not a notifier"),
        ({"suffix": "csv"}, "suffix: must start with a dot"),
        ({"colour": "blue"}, "colour: is not a batchdrop setting (check its spelling)"),
        (
            {"schema": {"fields": [{"name": "id", "type": "text"}]}},
            "schema.fields[0].type: got 'text'",
        ),
        (
            {"schema": {"fields": [{"name": "id", "constraints": {"pattern": "("}}]}},
            "schema.fields[0].constraints.pattern: not a valid regular expression",
        ),
        ({"schema": {"fields": [{"name": "id"}, {"name": "id"}]}}, "field 'id' is declared twice"),
    ],
)
def test_errors_name_the_key_and_what_is_allowed(changes: dict[str, Any], message: str) -> None:
    assert message in error(**changes)


def test_missing_key_is_named() -> None:
    data = dict(BASE)
    del data["inbound"]
    with pytest.raises(ConfigError, match="inbound: is required"):
        parse_config(data, source="t.yaml", environ={})


def test_primary_key_must_match_the_table_key() -> None:
    schema = {**BASE["schema"], "primaryKey": ["id"]}
    assert "does not match the table key ['id', 'at']" in error(schema=schema)
    ok = parse(schema={**BASE["schema"], "primaryKey": ["id", "at"]})
    assert ok.schema_.primary_key == ["id", "at"]


def test_environment_overrides_single_keys() -> None:
    env = {
        "BATCHDROP_INBOUND": "s3://in/drop/",
        "BATCHDROP_TABLE__URL": "dynamodb://students",
        "BATCHDROP_NOTIFY": '["sns://arn:aws:sns:us-east-1:1:t"]',
        "OTHER": "x",
    }
    c = parse_config(dict(BASE), source="t", environ=env)
    assert c.inbound == "s3://in/drop/"
    assert c.table.url == "dynamodb://students" and c.table.table_name == "students"
    assert c.notify == ["sns://arn:aws:sns:us-east-1:1:t"]
    assert c.ledger_url == "dynamodb://students-ledger"


def test_max_rejected_percentage() -> None:
    assert parse(max_rejected="5%").rejected_limit(200) == 10
    assert parse(max_rejected=3).rejected_limit(10**6) == 3
    assert parse().rejected_limit(10) is None


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "sub" / "batchdrop.yaml"
    cfg.parent.mkdir()
    cfg.write_text(
        "inbound: ./in\narchive: arc\nerrors: /abs/err\n"
        "table: {url: 'sqlite:///data.db', partition_key: id}\n"
        "schema: {fields: [{name: id}]}\nnotify: [console, log/r.jsonl]\n"
    )
    c = load_config(cfg, environ={})
    assert c.inbound == str(tmp_path / "sub" / "in")
    assert c.errors == "/abs/err"
    assert c.table.url == f"sqlite:///{tmp_path / 'sub' / 'data.db'}"
    assert c.notify == ["console", str(tmp_path / "sub" / "log" / "r.jsonl")]


def test_yaml_errors_have_a_position(tmp_path: Path) -> None:
    cfg = tmp_path / "b.yaml"
    cfg.write_text("inbound: x\ntable: [\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+, column \d+"):
        load_config(cfg, environ={})


def test_a_misspelt_key_is_named_with_the_closest_setting() -> None:
    table = {"url": "sqlite:///t.db", "partiton_key": "id", "sort_key": "at"}
    message = error(table=table)
    assert message == (
        "t.yaml: table.partiton_key: is not a batchdrop setting (did you mean partition_key?)"
    )  # and not "table.partition_key: is required", which only follows from the misspelling
    assert "suffix?" in error(sufix=".csv")
    schema = {"fields": BASE["schema"]["fields"], "missingvalues": ["NA"]}
    assert "schema.missingvalues: is not a batchdrop setting (did you mean missingValues?)" in (
        error(schema=schema)
    )
    unknown = error(colour="blue")
    assert "colour: is not a batchdrop setting (check its spelling); the settings here: " in unknown
    assert "partition_key" not in unknown and "on_error" in unknown


def test_every_problem_is_listed_unknown_keys_first() -> None:
    schema = {
        "fields": [
            {"name": "id", "constraints": {"requird": True}},
            {"name": "at", "type": "text"},
            {"name": "n", "type": "integer"},
        ]
    }
    message = error(schema=schema, on_error="skip", duplicates="last-wins", colour="blue")
    lines = message.splitlines()
    assert lines[0] == "t.yaml: 5 problems:"
    assert lines[1:] == [
        "  schema.fields[0].constraints.requird: is not a batchdrop setting "
        "(did you mean required?)",
        lines[2],
        "  schema.fields[1].type: got 'text'; Input should be 'string', 'integer', 'number', "
        "'boolean', 'date' or 'datetime' (field 'at')",
        "  on_error: got 'skip'; Input should be 'reject_file' or 'skip_rows' "
        "(did you mean skip_rows?)",
        "  duplicates: got 'last-wins'; Input should be 'last_wins', 'first_wins' or 'reject' "
        "(did you mean last_wins?)",
    ]
    assert lines[2].startswith("  colour: is not a batchdrop setting (check its spelling)")


def test_a_key_may_be_a_list_of_columns() -> None:
    fields = [*BASE["schema"]["fields"], {"name": "seq", "type": "integer"}]
    three = parse(
        table={"url": "sqlite:///t.db", "partition_key": ["id", "n"], "sort_key": ["at", "seq"]},
        schema={"fields": fields, "primaryKey": ["id", "n", "at", "seq"]},
    )
    assert three.key == ("id", "n", "at", "seq")
    assert three.table.physical_key == ("id#n", "at#seq")
    one = parse(table={"url": "sqlite:///t.db", "partition_key": ["id"], "sort_key": ["at"]})
    assert one.table.partition_key == "id" and one.table.physical_key == ("id", "at")
    named = parse(
        table={
            "url": "sqlite:///t.db",
            "partition_key": ["id", "n"],
            "partition_key_name": "PK",
            "key_separator": "|",
        }
    )
    assert named.table.physical_key == ("PK", None) and named.key == ("id", "n")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"partition_key": ["id", "nope"]},
            "table.partition_key 'nope' is not a field of the schema",
        ),
        ({"partition_key": ["id", "id"]}, "table.partition_key: 'id' is listed twice"),
        ({"partition_key": []}, "table.partition_key: give a column name or a list"),
        ({"partition_key": ["id", "at"], "sort_key": "at"}, "table.sort_key repeats 'at'"),
        (
            {"partition_key": ["id", "at"], "key_separator": "-"},
            "table.key_separator '-' can be part of the text of 'at' (date)",
        ),
        ({"partition_key": ["id", "n"], "key_separator": "x"}, "table.key_separator: 'x'"),
        (
            {"partition_key": "id", "partition_key_name": "pk"},
            "table.partition_key_name names a composite partition_key",
        ),
        (
            {"partition_key": ["id", "n"], "partition_key_name": "at"},
            "table.partition_key: the joined attribute name 'at' is a field of the schema",
        ),
    ],
)
def test_composite_key_errors_name_the_key(table: dict[str, Any], message: str) -> None:
    assert message in error(table={"url": "sqlite:///t.db", **table})


def test_a_three_column_primary_key_matches_the_flattened_table_key() -> None:
    table = {"url": "sqlite:///t.db", "partition_key": "id", "sort_key": ["at", "n"]}
    ok = parse(table=table, schema={**BASE["schema"], "primaryKey": ["id", "at", "n"]})
    assert ok.schema_.primary_key == ["id", "at", "n"]
    wrong = error(table=table, schema={**BASE["schema"], "primaryKey": ["id", "n", "at"]})
    assert "schema.primaryKey ['id', 'n', 'at'] does not match the table key ['id', 'at', 'n']" in (
        wrong
    )


@pytest.mark.parametrize(
    "encoding", ["utf-8-sig", "UTF-8", "latin-1", "cp1252", "utf-16", "utf_32"]
)
def test_csv_encoding_takes_any_file_encoding_python_knows(encoding: str) -> None:
    config = parse_config({**BASE, "csv": {"encoding": encoding}}, environ={})
    assert config.csv.encoding == encoding


@pytest.mark.parametrize(
    ("encoding", "why"),
    [
        ("klingon", "is not an encoding Python knows"),
        ("rot13", "is not a file encoding"),
        ("utf-7", "is not a file encoding"),
        ("unicode_escape", "is not a file encoding"),
        ("idna", "is not a file encoding"),
    ],
)
def test_csv_encoding_refuses_what_is_not_a_file_encoding(encoding: str, why: str) -> None:
    with pytest.raises(ConfigError, match=r"csv\.encoding") as e:
        parse_config({**BASE, "csv": {"encoding": encoding}}, environ={})
    assert why in str(e.value)
