"""The router: each file, shard task and recovery to its feed's pipeline, built once."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest

from batchdrop.config import Config, parse_config
from batchdrop.errors import ConfigError
from batchdrop.ports import FileRef
from batchdrop.router import Router
from batchdrop.shards import ShardTask

DATA: dict[str, Any] = {
    "inbound": "/in",
    "archive": "/archive",
    "errors": "/errors",
    "notify": [],
    "feeds": [
        {
            "name": "students",
            "match": {"prefix": "students/"},
            "table": {"url": "sqlite:///a.db", "name": "students", "partition_key": "id"},
            "schema": {"fields": [{"name": "id"}]},
        },
        {
            "name": "grades",
            "match": {"glob": "grades_*"},
            "suffix": ".tsv",
            "table": {"url": "sqlite:///a.db", "name": "grades", "partition_key": "id"},
            "schema": {"fields": [{"name": "id"}]},
        },
        {
            "name": "rooms",
            "match": {"prefix": "rooms/"},
            "table": {"url": "sqlite:///b.db", "name": "rooms", "partition_key": "id"},
            "schema": {"fields": [{"name": "id"}]},
        },
    ],
}


@dataclass
class FakePipeline:
    config: Config
    calls: list[tuple[str, Any]] = field(default_factory=list)
    dispatch: Any = None

    def process_ref(self, ref: FileRef, **options: Any) -> str:
        self.calls.append(("process", ref.name, options.get("unmatched")))
        return f"{self.config.feed}:{ref.name}"

    def shard_task(self, task: ShardTask, deadline: Any = None) -> str:
        self.calls.append(("task", task.file))
        return f"{self.config.feed}:{task.file}"

    def recover(self) -> list[Any]:
        self.calls.append(("recover", self.config.ledger_url))
        return []


def router(data: dict[str, Any] = DATA) -> tuple[Router, dict[str | None, FakePipeline]]:
    made: dict[str | None, FakePipeline] = {}

    def make(config: Config, notifiers: Any) -> Any:
        made[config.feed] = FakePipeline(config)
        return made[config.feed]

    config = parse_config(copy.deepcopy(data), environ={})
    return Router(config, notifiers=[], make=make), made


def ref(name: str) -> FileRef:
    return FileRef(name, 1, "v1", 0.0, "/in/" + name)


def test_files_go_to_their_feeds_pipeline_built_once_and_only_when_needed() -> None:
    r, made = router()
    assert r.process_ref(ref("grades_2026.tsv")) == "grades:grades_2026.tsv"
    assert set(made) == {"grades"}
    assert r.process_ref(ref("students/x.csv")) == "students:students/x.csv"
    assert r.process_ref(ref("students/y.csv")) == "students:students/y.csv"
    assert set(made) == {"grades", "students"} and len(made["students"].calls) == 2
    assert r.suffixes == (".csv", ".csv.gz", ".tsv", ".tsv.gz")
    # a file outside inbound is routed by the name it is given, or by the feed named
    assert r.process_ref(ref("x.csv"), route_as="rooms/x.csv") == "rooms:x.csv"
    assert r.process_ref(ref("x.csv"), feed="grades") == "grades:x.csv"
    with pytest.raises(ConfigError, match="no feed named 'staff'; the feeds: students"):
        r.process_ref(ref("x.csv"), feed="staff")


def test_a_file_no_feed_matches_is_rejected_by_the_first_pipeline_or_refused_in_a_dry_run() -> None:
    r, made = router()
    r.process_ref(ref("teachers.csv"))
    (call,) = made["students"].calls
    assert call[:2] == ("process", "teachers.csv")
    assert "teachers.csv matches no feed" in call[2] and "rooms: prefix 'rooms/'" in call[2]
    with pytest.raises(ConfigError, match=r"matches no feed.*--feed"):
        r.process_ref(ref("teachers.csv"), dry_run=True)


def test_shard_tasks_reach_the_feed_that_planned_them() -> None:
    r, _ = router()
    task = ShardTask("run", "grades_1.tsv", 1, "v", "u", {}, "check", feed="grades")
    assert r.shard_task(task) == "grades:grades_1.tsv"
    # a task without a feed (an earlier version's) is routed by its file's name
    old = ShardTask("run", "rooms/r.csv", 1, "v", "u", {}, "check")
    assert r.shard_task(old) == "rooms:rooms/r.csv"
    # its feed carried in the message: what a queue consumer reads back
    assert ShardTask.from_message(task.message()) == task


def test_each_ledger_recovers_once_and_dispatch_reaches_every_pipeline() -> None:
    r, made = router()
    r.dispatch = marker = object()
    r.recover()
    assert [c for p in made.values() for c in p.calls] == [
        ("recover", "sqlite:///a.db"),
        ("recover", "sqlite:///b.db"),
    ]
    r.process_ref(ref("grades_1.tsv"))
    assert {p.config.feed: p.dispatch is marker for p in made.values()} == {
        "students": True,
        "rooms": True,
        "grades": True,
    }


def test_a_config_without_feeds_is_one_pipeline_for_every_file() -> None:
    single = {k: v for k, v in DATA.items() if k != "feeds"}
    single.update(table=DATA["feeds"][0]["table"], schema=DATA["feeds"][0]["schema"])
    r, _ = router(single)
    assert not r.named
    assert r.process_ref(ref("any/where.txt")) == "None:any/where.txt"
    assert r.suffixes == (".csv", ".csv.gz")
    with pytest.raises(ConfigError, match="this config has no feeds"):
        r.process_ref(ref("a.csv"), feed="students")
