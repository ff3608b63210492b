"""``feeds:`` in batchdrop.yaml: each feed a whole config, top-level settings as defaults."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from batchdrop.config import parse_config
from batchdrop.config_feeds import route, unmatched_reason
from batchdrop.errors import ConfigError

BASE: dict[str, Any] = {
    "inbound": "/in",
    "archive": "/archive",
    "errors": "/errors",
    "on_error": "skip_rows",
    "csv": {"delimiter": ";"},
    "feeds": [
        {
            "name": "students",
            "match": {"prefix": "students/"},
            "table": {"url": "dynamodb://students", "partition_key": "id"},
            "schema": {"fields": [{"name": "id"}, {"name": "name"}]},
            "mode": "snapshot",
            "csv": {"encoding": "latin-1"},
        },
        {
            "name": "grades",
            "match": {"glob": "grades_*.csv"},
            "table": {"url": "dynamodb://grades", "partition_key": "id", "sort_key": "course"},
            "schema": {
                "fields": [
                    {"name": "id"},
                    {"name": "course"},
                    {"name": "at", "type": "date"},
                ]
            },
            "only_if_newer": "at",
            "write": "changed_only",
            "on_error": "reject_file",
        },
        {
            "name": "local-rest",
            "match": {"prefix": "misc/", "glob": "*.csv"},
            "table": {"url": "sqlite:///local.db", "name": "misc", "partition_key": "id"},
            "schema": {"fields": [{"name": "id"}]},
        },
    ],
}


def feeds_of(data: dict[str, Any], environ: dict[str, str] | None = None) -> Any:
    return parse_config(copy.deepcopy(data), environ=environ or {}).feeds


def test_each_feed_is_a_whole_config_with_the_top_level_as_defaults() -> None:
    students, grades, rest = feeds_of(BASE)
    assert [students.name, grades.name, rest.name] == ["students", "grades", "local-rest"]
    assert students.config.feed == "students" and grades.config.feed == "grades"
    # mappings merged key by key, values replaced
    assert (students.config.csv.delimiter, students.config.csv.encoding) == (";", "latin-1")
    assert grades.config.csv.encoding == "utf-8-sig"
    assert students.config.on_error == "skip_rows" and grades.config.on_error == "reject_file"
    assert students.config.mode == "snapshot" and grades.config.mode == "upsert"
    assert grades.config.only_if_newer == "at" and grades.config.write == "changed_only"
    assert grades.config.key == ("id", "course")
    # the deployment's settings are every feed's
    assert {f.config.inbound for f in (students, grades, rest)} == {"/in"}


def test_dynamodb_feeds_share_one_ledger_and_a_sqlite_feed_keeps_its_own() -> None:
    students, grades, rest = feeds_of(BASE)
    assert students.config.ledger_url == grades.config.ledger_url == "dynamodb://students-ledger"
    assert rest.config.ledger_url == "sqlite:///local.db"
    named = copy.deepcopy(BASE)
    named["ledger"] = "dynamodb://runs"
    assert {f.config.ledger_url for f in feeds_of(named)[:2]} == {"dynamodb://runs"}


def test_files_are_routed_to_the_first_feed_that_matches() -> None:
    feeds = feeds_of(BASE)
    assert route(feeds, "students/2026-11-28.csv").name == "students"
    assert route(feeds, "grades_2026.csv").name == "grades"
    assert route(feeds, "misc/a.csv").name == "local-rest"
    assert route(feeds, "misc/a.tsv") is None  # prefix matches, glob does not
    assert route(feeds, "teachers.csv") is None
    why = unmatched_reason(feeds, "teachers.csv")
    assert "teachers.csv matches no feed" in why and "grades: glob 'grades_*.csv'" in why


def test_a_config_without_feeds_is_one_feed_that_takes_every_file() -> None:
    single = copy.deepcopy(BASE)
    first = single.pop("feeds")[0]
    single.update({k: first[k] for k in ("table", "schema")})
    (feed,) = feeds_of(single)
    assert feed.name is None and feed.config.feed is None
    assert route([feed], "any/where/at all.csv") is feed


def test_a_feed_setting_is_reached_from_the_environment_by_the_feeds_name() -> None:
    env = {
        "BATCHDROP_FEEDS__GRADES__TABLE__URL": "dynamodb://stack-grades",
        "BATCHDROP_FEEDS__LOCAL_REST__BATCH_SIZE": "7",
    }
    _, grades, rest = feeds_of(BASE, env)
    assert grades.config.table.url == "dynamodb://stack-grades"
    assert rest.config.batch_size == 7
    with pytest.raises(ConfigError, match="names a feed the config does not have"):
        feeds_of(BASE, {"BATCHDROP_FEEDS__TEACHERS__MODE": "snapshot"})


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (
            lambda f: f[1].update(tabel=f[1].pop("table")),
            "feeds[1] (grades).tabel",
            "did you mean table",
        ),
        (lambda f: f[0].update(inbound="/x"), "feeds[0] (students).inbound", "whole deployment"),
        (lambda f: f[0].pop("schema"), "feeds[0] (students).schema", "is required"),
        (lambda f: f[1].pop("match"), "feeds[1] (grades).match", "is required"),
        (lambda f: f[1].update(name="students"), "feeds[1].name", "declared twice"),
        (lambda f: f[1].update(name="2nd feed"), "feeds[1].name", "needs a name"),
        (lambda f: f[1].update(only_if_newer="id"), "feeds[1] (grades)", "is a key column"),
        (lambda f: f[1].update(only_if_newer="grdae"), "feeds[1] (grades)", "not a field"),
        (
            lambda f: f[0].update(max_deletes="150%"),
            "feeds[0] (students).max_deletes",
            "percentage",
        ),
        (
            lambda f: f[0].update(match={"prefix": "/abs/"}),
            "feeds[0] (students).match.prefix",
            "leading",
        ),
        (lambda f: f[0].update(mode="replace"), "feeds[0] (students).mode", "snapshot"),
    ],
)
def test_a_feed_problem_names_the_feed_and_its_key(change: Any, key: str, message: str) -> None:
    data = copy.deepcopy(BASE)
    change(data["feeds"])
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ={})
    assert info.value.key == key
    assert message in str(info.value)
