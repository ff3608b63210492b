"""The write modes on DynamoDB, on the moto server: ``mode: snapshot`` (of the table or of the
partitions a file holds), ``write: changed_only`` and ``only_if_newer``, each load checked
against a model of what the table must hold, on random days of one feed; the guard that keeps a
truncated snapshot out; two files of one feed at once; and kill -9 in the middle of the deletes."""

from __future__ import annotations

import csv
import io
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchdrop.config import Config, parse_config
from batchdrop.pipeline import Pipeline
from batchdrop.report import Receipt

from .conftest import Stack, create_table

pytestmark = pytest.mark.aws
CRASH = Path(__file__).with_name("crash_resume.py")
FIELDS = [
    {"name": "id", "type": "string"},
    {"name": "course", "type": "string"},
    {"name": "grade", "type": "integer"},
    {"name": "at", "type": "integer"},
    {"name": "note", "type": "string"},
]
Key = tuple[str, str]
Row = tuple[str, str, int, int | None, str]


def settings(stack: Stack, table: str, **modes: Any) -> dict[str, Any]:
    return {
        "inbound": f"s3://{stack.inbound}/incoming/",
        "archive": f"s3://{stack.archive}/",
        "errors": f"s3://{stack.errors}/rejected/",
        "table": {"url": f"dynamodb://{table}", "partition_key": "id", "sort_key": "course"},
        "ledger": f"dynamodb://{stack.ledger}",
        "schema": {"fields": FIELDS},
        "notify": [],
        "aws": {
            "endpoint_url": stack.endpoint,
            "region": "us-east-1",
            "max_workers": 4,
            "claim_ttl_seconds": 2,
        },
        "checkpoint": {"every_seconds": 1},
        **modes,
    }


def grades_table(stack: Stack, name: str = "grades") -> str:
    table = f"{name}-{stack.suffix}"
    create_table(stack.ddb, table, key=("id", "course"))
    return table


def text(rows: list[Row]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "course", "grade", "at", "note"])
    for r in rows:
        w.writerow(["" if v is None else v for v in r])
    return out.getvalue()


def load(stack: Stack, config: Config, rows: list[Row], name: str = "day.csv") -> Receipt:
    stack.upload(f"incoming/{name}", text(rows))
    return Pipeline(config, notifiers=[]).process(name)


def table_rows(stack: Stack, table: str) -> dict[Key, Row]:
    out: dict[Key, Row] = {}
    args: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        reply = stack.ddb.scan(**args)  # tests only
        for item in reply["Items"]:
            v = {k: next(iter(a.values())) for k, a in item.items()}
            at = int(v["at"]) if "at" in v else None
            out[v["id"], v["course"]] = (v["id"], v["course"], int(v["grade"]), at, v["note"])
        if "LastEvaluatedKey" not in reply:
            return out
        args["ExclusiveStartKey"] = reply["LastEvaluatedKey"]


def first_day(rnd: random.Random, n: int = 120) -> list[Row]:
    keys = {(f"S{rnd.randrange(12):02d}", f"C{rnd.randrange(40):03d}") for _ in range(n)}
    return [(i, c, rnd.randrange(20), rnd.randrange(1, 5), "d1") for i, c in sorted(keys)]


def next_day(rnd: random.Random, rows: list[Row], day: int) -> list[Row]:
    """Some rows changed (a few to an older version), some gone, some new, in random order."""
    out: list[Row] = []
    for r in rows:
        roll = rnd.random()
        if roll < 0.1:
            continue  # gone
        if roll < 0.3:
            at = r[3] if r[3] is not None else 1
            r = (r[0], r[1], rnd.randrange(20), at + rnd.choice([-1, 1, 2]), f"d{day}")
        out.append(r)
    have = {(r[0], r[1]) for r in out}
    for _ in range(10):
        key = (f"S{rnd.randrange(14):02d}", f"C{rnd.randrange(40, 60):03d}")
        if key not in have:
            have.add(key)
            out.append((*key, rnd.randrange(20), rnd.choice([None, 1, 3]), f"d{day}"))
    rnd.shuffle(out)
    return out


def model(
    before: dict[Key, Row], rows: list[Row], modes: dict[str, Any], sent: list[Row] | None = None
) -> tuple[dict[Key, Row], set[Key]]:
    """What the table holds after a file of ``rows`` is loaded with ``modes`` (of which only
    ``sent`` are written, when changed_only leaves some out), and the stale rows' keys."""
    after = dict(before)
    newer = modes.get("only_if_newer")
    stale: set[Key] = set()
    for r in rows if sent is None else sent:
        key = (r[0], r[1])
        old = after.get(key)
        # an item without a version never replaces one; an equal version does
        if newer and old is not None and (r[3] is None or (old[3] is not None and old[3] > r[3])):
            stale.add(key)
            continue
        after[key] = r
    if modes.get("mode") == "snapshot":
        keys = {(r[0], r[1]) for r in rows}
        held = {r[0] for r in rows}
        for key in list(after):
            in_scope = modes.get("snapshot_scope") != "partition" or key[0] in held
            if key not in keys and in_scope:
                del after[key]
    return after, stale


MODES = [
    {"mode": "snapshot"},
    {"mode": "snapshot", "snapshot_scope": "partition"},
    {"write": "changed_only"},
    {"mode": "snapshot", "write": "changed_only"},
    {"only_if_newer": "at"},
    {"only_if_newer": "at", "write": "changed_only", "mode": "snapshot"},
]


@pytest.mark.parametrize("modes", MODES, ids=lambda m: "+".join(map(str, m.values())))
def test_each_mode_leaves_the_table_as_the_model_says_day_after_day(
    stack: Stack, modes: dict[str, Any]
) -> None:
    rnd = random.Random(repr(sorted(modes.items())))
    table = grades_table(stack)
    config = parse_config(
        settings(stack, table, max_deletes="100%", **modes), source="test", environ={}
    )
    expected: dict[Key, Row] = {}
    seen: dict[Key, Row] = {}  # each key's row in the loads so far: what changed_only compares
    changed_only = modes.get("write") == "changed_only"
    rows = first_day(rnd)
    for day in range(1, 5):
        before = dict(expected)
        skipped = {(r[0], r[1]) for r in rows if seen.get((r[0], r[1])) == r}
        attempted = [r for r in rows if not changed_only or (r[0], r[1]) not in skipped]
        expected, stale = model(expected, rows, modes, attempted)
        if changed_only and day > 1:
            # a mark only an item never rewritten keeps (a put replaces the whole item)
            for key in before:
                stack.ddb.update_item(
                    TableName=table,
                    Key={"id": {"S": key[0]}, "course": {"S": key[1]}},
                    UpdateExpression="SET mark = :m",
                    ExpressionAttributeValues={":m": {"S": "untouched"}},
                )
        receipt = load(stack, config, rows, f"day{day}.csv")
        assert receipt.status == "loaded", receipt.reason
        assert table_rows(stack, table) == expected, f"day {day}"

        deleted = set(before) - set(expected)
        assert receipt.rows_deleted == len(deleted)
        assert receipt.rows_stale == len(stale)
        assert receipt.rows_read == len(rows)
        assert receipt.rows_loaded == len(rows) - len(stale)
        if changed_only:
            assert receipt.rows_unchanged == len(skipped)
            if day > 1:
                rewritten = {(r[0], r[1]) for r in attempted} - stale
                assert _marked(stack, table) == set(before) - rewritten - deleted
        if modes.get("mode") == "snapshot":
            seen = {}
        seen.update({(r[0], r[1]): r for r in rows})
        rows = next_day(rnd, rows, day + 1)


def _marked(stack: Stack, table: str) -> set[Key]:
    items = stack.ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    return {(i["id"]["S"], i["course"]["S"]) for i in items if "mark" in i}


def test_a_truncated_snapshot_is_rejected_by_the_guard_and_nothing_is_written(
    stack: Stack,
) -> None:
    table = grades_table(stack)
    config = parse_config(
        settings(stack, table, mode="snapshot", write="changed_only"), source="test", environ={}
    )
    rows = first_day(random.Random(7), 200)
    assert load(stack, config, rows, "full.csv").status == "loaded"
    before = table_rows(stack, table)

    changed = [(r[0], r[1], r[2] + 1, r[3], "changed") for r in rows[:60]]
    receipt = load(stack, config, changed, "truncated.csv")  # a third of the rows, changed
    assert (receipt.status, receipt.rows_read, receipt.rows_rejected) == ("rejected", 60, 60)
    n = len(rows)
    share = f"{100 * (n - 60) / n:.1f}".removesuffix(".0") + "%"
    assert f"the snapshot would delete {n - 60} of {n} items ({share}), over max_deletes 10%" in (
        receipt.reason or ""
    )
    assert table_rows(stack, table) == before  # not one row written, not one deleted
    assert "rejected/truncated.csv" in stack.keys(stack.errors)

    # the next full file is compared with the last load that was committed, not the rejected one
    rows[0] = (rows[0][0], rows[0][1], 99, 9, "fixed")
    receipt = load(stack, config, rows[:-5], "next.csv")
    assert (receipt.status, receipt.rows_deleted, receipt.rows_unchanged) == ("loaded", 5, n - 6)
    assert table_rows(stack, table) == {(r[0], r[1]): r for r in rows[:-5]}


def test_the_state_is_kept_beside_errors_and_the_last_one_only(stack: Stack) -> None:
    table = grades_table(stack)
    config = parse_config(settings(stack, table, mode="snapshot"), source="test", environ={})
    rows = first_day(random.Random(3))
    for day in range(3):
        assert load(stack, config, rows, f"d{day}.csv").status == "loaded"
    folders = {k.split("/")[3] for k in stack.keys(stack.errors) if "_batchdrop/feeds/" in k}
    assert len(folders) == 1  # each load's state replaces the one before
    (folder,) = folders
    assert folder.startswith(f"table-{table}.")
    assert not [k for k in stack.keys(stack.errors) if "_batchdrop/state/" in k]


def test_two_files_of_one_feed_at_once_the_second_commit_is_retried_against_the_first(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """File B plans against the state before A; A commits first; B's commit is refused and B,
    retried, deletes what A had and B lacks."""
    from batchdrop.tables import dynamodb

    table = grades_table(stack)
    config = parse_config(
        settings(stack, table, mode="snapshot", max_deletes="100%"), source="test", environ={}
    )
    day1 = first_day(random.Random(1), 40)
    assert load(stack, config, day1, "day1.csv").status == "loaded"
    a_rows = [*day1, ("S90", "C900", 1, 1, "a")]
    b_rows = day1[:30]
    stack.upload("incoming/b.csv", text(b_rows))

    begin = dynamodb.DynamoTable.begin

    def a_commits_first(self: Any, claim: Any, ledger: Any) -> Any:
        monkeypatch.setattr(dynamodb.DynamoTable, "begin", begin)
        assert load(stack, config, a_rows, "a.csv").status == "loaded"
        return begin(self, claim, ledger)

    monkeypatch.setattr(dynamodb.DynamoTable, "begin", a_commits_first)
    first = Pipeline(config, notifiers=[]).process("b.csv")
    assert first.status == "failed"
    assert "another file of feed" in (first.reason or "")
    assert (("S90", "C900")) in table_rows(stack, table)  # A's row, still there

    again = Pipeline(config, notifiers=[]).process("b.csv")
    assert again.status == "loaded", again.reason
    assert table_rows(stack, table) == {(r[0], r[1]): r for r in b_rows}
    assert again.rows_deleted == len(a_rows) - len(b_rows)


def run_crashing(config: Path, name: str, point: str, nth: int) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, str(CRASH), str(config), name, point, str(nth)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "random"},
        timeout=300,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout


@pytest.mark.parametrize(("point", "nth"), [("mid-delete", 2), ("before-record", 1)])
def test_kill_9_in_the_deletes_then_a_rerun_finishes_them_exactly(
    stack: Stack, tmp_path: Path, point: str, nth: int
) -> None:
    table = grades_table(stack)
    data = settings(stack, table, mode="snapshot", write="changed_only", max_deletes="100%")
    config_path = tmp_path / "batchdrop.yaml"
    config_path.write_text(yaml.safe_dump(data))
    config = parse_config(data, source="test", environ={})
    rows = first_day(random.Random(11), 300)
    assert load(stack, config, rows, "day1.csv").status == "loaded"

    day2 = [(r[0], r[1], r[2] + 1, r[3], "two") if i % 10 == 0 else r for i, r in enumerate(rows)]
    day2 = day2[100:]  # 100 rows gone: 4 requests of deletes
    stack.upload("incoming/day2.csv", text(day2))
    code, out = run_crashing(config_path, "day2.csv", point, nth)
    assert code == 137, out
    gone = set(table_rows(stack, table)) - {(r[0], r[1]) for r in rows}
    assert not gone
    remaining = len(table_rows(stack, table))
    assert len(day2) <= remaining < len(rows) if point == "mid-delete" else remaining == len(day2)

    code, out = run_crashing(config_path, "day2.csv", "none", 0)
    while "status=busy" in out:  # the dead run's claim has not lapsed yet
        time.sleep(0.5)
        code, out = run_crashing(config_path, "day2.csv", "none", 0)
    assert "status=loaded" in out, out
    assert table_rows(stack, table) == {(r[0], r[1]): r for r in day2}
    # the rerun compared with day one still (the crashed run was never recorded)
    day3 = day2[:-10]
    receipt = load(stack, config, day3, "day3.csv")
    assert (receipt.rows_deleted, receipt.rows_unchanged) == (10, len(day3))
    assert table_rows(stack, table) == {(r[0], r[1]): r for r in day3}


def test_with_a_sqlite_ledger_the_feed_state_is_named_there(stack: Stack, tmp_path: Path) -> None:
    """A DynamoDB table with a local ledger (a load run from a laptop or a worker): the
    ledger's database names the state, in the commit's transaction."""
    import sqlite3

    table = grades_table(stack)
    data = settings(stack, table, mode="snapshot", write="changed_only", max_deletes="100%")
    data["ledger"] = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = parse_config(data, source="test", environ={})
    rows = first_day(random.Random(5), 80)
    assert load(stack, config, rows, "one.csv").status == "loaded"
    receipt = load(stack, config, rows[10:], "two.csv")
    assert (receipt.status, receipt.rows_deleted, receipt.rows_unchanged) == (
        "loaded",
        10,
        len(rows) - 10,
    )
    assert table_rows(stack, table) == {(r[0], r[1]): r for r in rows[10:]}
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        (current,) = conn.execute("SELECT current FROM _batchdrop_feeds").fetchone()
    assert current == receipt.run_id


def test_two_versions_of_one_file_out_of_order_never_let_the_older_overwrite(
    stack: Stack,
) -> None:
    """Yesterday's and today's upload of one name, their events delivered newest first: the
    event of the older version finds the name's current object (the newer) already loaded, and
    older content uploaded again is stale row by row."""
    from batchdrop.aws.handler import Runtime

    from .conftest import s3_event

    table = grades_table(stack)
    config = parse_config(settings(stack, table, only_if_newer="at"), source="test", environ={})
    runtime = Runtime(config)
    older = [("S01", "C001", 10, 1, "old"), ("S02", "C001", 11, 1, "old")]
    newer = [("S01", "C001", 20, 2, "new"), ("S02", "C001", 21, 2, "new")]
    events = []
    for rows in (older, newer):
        body = text(rows)
        put = stack.upload("incoming/prices.csv", body)
        key = "incoming/prices.csv"
        events.append(s3_event(stack.inbound, key, size=len(body), etag=put["ETag"].strip('"')))

    results = [runtime.handle(e, lambda: 600.0)["results"][0] for e in reversed(events)]
    assert results[0]["status"] == "loaded"
    assert results[1]["status"] in ("gone", "already_processed"), results[1]
    assert table_rows(stack, table) == {(r[0], r[1]): r for r in newer}

    stack.upload("incoming/prices.csv", text(older))  # yesterday's file sent again
    receipt = Pipeline(config, notifiers=[]).process("prices.csv")
    assert (receipt.status, receipt.rows_stale, receipt.rows_loaded) == ("loaded", 2, 0)
    assert table_rows(stack, table) == {(r[0], r[1]): r for r in newer}


def test_validate_previews_the_plan_and_changes_nothing(stack: Stack) -> None:
    table = grades_table(stack)
    config = parse_config(
        settings(stack, table, mode="snapshot", write="changed_only"), source="test", environ={}
    )
    rows = first_day(random.Random(9), 150)
    assert load(stack, config, rows, "day1.csv").status == "loaded"
    state_before = [k for k in stack.keys(stack.errors) if "_batchdrop/feeds/" in k]
    table_before = table_rows(stack, table)

    day2 = [(r[0], r[1], r[2] + 1, r[3], "x") if i < 3 else r for i, r in enumerate(rows[:-4])]
    stack.upload("incoming/day2.csv", text(day2))
    pipeline = Pipeline(config, notifiers=[])
    preview = pipeline.process("day2.csv", dry_run=True)
    assert (preview.status, preview.rows_unchanged, preview.rows_deleted) == (
        "would_load",
        len(day2) - 3,
        4,
    )
    assert preview.write_units == 3 + 4  # the changed rows' puts and the deletes
    assert table_rows(stack, table) == table_before
    assert [k for k in stack.keys(stack.errors) if "_batchdrop/feeds/" in k] == state_before

    loaded = pipeline.process("day2.csv")
    assert (loaded.rows_unchanged, loaded.rows_deleted) == (preview.rows_unchanged, 4)

    stack.upload("incoming/cut.csv", text(day2[:10]))
    cut = pipeline.process("cut.csv", dry_run=True)
    assert cut.status == "rejected"  # the CLI shows a dry run's rejection as invalid
    assert "the snapshot would delete" in (cut.reason or "")
    assert cut.write_units is None


def test_stale_rows_are_counted_once_across_pauses_at_checkpoints(stack: Stack) -> None:
    """A big only_if_newer file loaded by invocations that each pause at a checkpoint: the
    stale rows found by every invocation add up, each once."""
    from batchdrop.report import PAUSED

    from ..unit.test_resumable_passes import ticking

    table = grades_table(stack)
    data = settings(stack, table, only_if_newer="at", batch_size=50)
    data["checkpoint"] = {"every_bytes": 20_000, "every_seconds": 1}
    config = parse_config(data, source="test", environ={})
    pad = "x" * 200  # rows big enough for a file read in several segments
    rows = [(f"S{i:04d}", "C001", i % 20, 5, "new" + pad) for i in range(600)]
    assert load(stack, config, rows, "today.csv").status == "loaded"
    older = [(r[0], r[1], 0, 4 if i % 3 else 6, "old" + pad) for i, r in enumerate(rows)]
    stack.upload("incoming/yesterday.csv", text(older))
    runs = 0
    while True:
        receipt = Pipeline(config, notifiers=[]).process("yesterday.csv", deadline=ticking(4))
        runs += 1
        if receipt.status != PAUSED:
            break
        assert runs < 300
    assert runs > 2, (receipt.status, receipt.reason)  # several invocations
    stale = sum(1 for i in range(600) if i % 3)
    assert (receipt.status, receipt.rows_stale, receipt.rows_loaded) == (
        "loaded",
        stale,
        600 - stale,
    )
    pairs = enumerate(zip(rows, older, strict=True))
    expected = {(r[0], r[1]): (o if not i % 3 else r) for i, (r, o) in pairs}
    assert table_rows(stack, table) == expected


def test_a_feed_state_removed_by_hand_fails_the_load_saying_so(stack: Stack) -> None:
    table = grades_table(stack)
    config = parse_config(settings(stack, table, mode="snapshot"), source="test", environ={})
    rows = first_day(random.Random(2), 40)
    assert load(stack, config, rows, "one.csv").status == "loaded"
    state = [k for k in stack.keys(stack.errors) if "_batchdrop/feeds/" in k]
    stack.s3.delete_objects(Bucket=stack.errors, Delete={"Objects": [{"Key": k} for k in state]})
    before = table_rows(stack, table)
    receipt = load(stack, config, rows[:5], "two.csv")
    assert receipt.status == "failed"
    assert "the state of the feed's last load" in (receipt.reason or "")
    assert "is missing from" in (receipt.reason or "")
    assert table_rows(stack, table) == before  # nothing written, nothing deleted


def test_a_snapshot_scope_changed_between_loads_compares_with_the_last_load(
    stack: Stack,
) -> None:
    """The last load's state was bucketed by key (scope: table); this one's by partition."""
    table = grades_table(stack)
    whole = parse_config(
        settings(stack, table, mode="snapshot", write="changed_only"), source="test", environ={}
    )
    rows = first_day(random.Random(4), 120)
    assert load(stack, whole, rows, "one.csv").status == "loaded"
    by_partition = parse_config(
        settings(
            stack,
            table,
            mode="snapshot",
            snapshot_scope="partition",
            write="changed_only",
            max_deletes="100%",
        ),
        source="test",
        environ={},
    )
    held = sorted({r[0] for r in rows})[:3]
    day2 = [r for r in rows if r[0] in held][1:]  # three partitions, one of their rows gone
    receipt = load(stack, by_partition, day2, "two.csv")
    assert (receipt.status, receipt.rows_deleted, receipt.rows_unchanged) == (
        "loaded",
        1,
        len(day2),
    )
    expected, _ = model(
        {(r[0], r[1]): r for r in rows},
        day2,
        {"mode": "snapshot", "snapshot_scope": "partition"},
    )
    assert table_rows(stack, table) == expected
