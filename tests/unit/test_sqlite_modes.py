"""The write modes on SQLite (sqlite_modes.py), through the engine, on both write paths (in
this process, and the writer process with staged flushes): a snapshot deletes what the file
does not hold, of the table or of the partitions it holds, within ``max_deletes``;
``changed_only`` writes new and changed rows only; ``only_if_newer`` never replaces a newer
version. Every receipt reconciles, and repeated keys are counted exactly under every
duplicates policy, also when the row they repeat was kept as the table held it."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from batchdrop.config import Config, parse_config
from batchdrop.pipeline import Pipeline
from batchdrop.report import LOADED, REJECTED, Receipt
from batchdrop.tables import sqlite_load
from batchdrop.tables.sqlite_stage import Flushes

HEADER = ("shop", "sku", "price", "version", "note")
Row = tuple[str, str, str, str, str]  # as the file writes it ("" is empty)


@pytest.fixture(params=["in-process", "writer"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both paths, with flushes of a few rows, so that repeats and kept rows meet across
    flushes as well as within one."""
    if request.param == "writer":
        monkeypatch.setattr(sqlite_load, "WRITER_MIN_BYTES", 0)
    monkeypatch.setattr(sqlite_load, "FLUSHES", Flushes(min_rows=7, share=0.0, cache_kib=64))
    return str(request.param)


class Feed:
    """A folder, a config and the table it loads: drop files, run them, read the table."""

    def __init__(self, root: Path, **settings: Any):
        self.root = root
        for loc in ("inbound", "archive", "errors"):
            (root / loc).mkdir(exist_ok=True)
        self.settings = settings
        self.files = 0
        self._pipeline: Pipeline | None = None

    def config(self) -> Config:
        data: dict[str, Any] = {
            "inbound": str(self.root / "inbound"),
            "archive": str(self.root / "archive"),
            "errors": str(self.root / "errors"),
            "table": {
                "url": f"sqlite:///{self.root}/t.db",
                "name": "items",
                "partition_key": "shop",
                "sort_key": "sku",
            },
            "schema": {
                "fields": [
                    {"name": "shop"},
                    {"name": "sku"},
                    {"name": "price", "type": "number"},
                    {"name": "version", "type": "integer"},
                    {"name": "note"},
                ]
            },
            "batch_size": 5,
            "notify": [],
        }
        data.update(self.settings)
        return parse_config(data, source="test", environ={})

    def load(self, rows: list[Row], name: str | None = None) -> Receipt:
        self.files += 1
        name = name or f"f{self.files}.csv"
        lines = [",".join(HEADER)] + [",".join(r) for r in rows]
        (self.root / "inbound" / name).write_text("\n".join(lines) + "\n")
        receipt = self.pipeline().process(name)
        assert receipt.reconciles, receipt
        return receipt

    def pipeline(self) -> Pipeline:
        """One pipeline, as ``batchdrop run`` keeps, while the settings stay: a load must
        leave nothing behind on the connection for the next one."""
        if self._pipeline is None or self._pipeline.config != self.config():
            self.close()
            self._pipeline = Pipeline(self.config(), notifiers=[])
        return self._pipeline

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.backends.table.close()
            self._pipeline = None

    def table(self) -> dict[tuple[str, str], Row]:
        conn = sqlite3.connect(self.root / "t.db")
        try:
            return {
                (r[0], r[1]): tuple("" if v is None else str(v) for v in r)  # type: ignore[misc]
                for r in conn.execute(f"SELECT {', '.join(HEADER)} FROM items")
            }
        finally:
            conn.close()

    def runs(self) -> dict[tuple[str, str], int]:
        """The run (ledger sequence number) that last wrote each row."""
        conn = sqlite3.connect(self.root / "t.db")
        try:
            return {
                (s, k): r for s, k, r in conn.execute("SELECT shop, sku, _batchdrop_run FROM items")
            }
        finally:
            conn.close()


def rows_of(shop: str, skus: range, version: int = 1, note: str = "n") -> list[Row]:
    return [(shop, f"K{s:03d}", f"{s}.5", str(version), note) for s in skus]


def as_table(rows: list[Row]) -> dict[tuple[str, str], Row]:
    return {(r[0], r[1]): r for r in rows}


# --- snapshot -----------------------------------------------------------------------------------


@pytest.mark.parametrize("write", ["all", "changed_only"])
def test_a_snapshot_deletes_the_rows_its_file_no_longer_holds(
    tmp_path: Path, write_path: str, write: str
) -> None:
    feed = Feed(tmp_path, mode="snapshot", max_deletes="20%", write=write)
    first = rows_of("A", range(30))
    assert feed.load(first).rows_deleted == 0

    # three rows gone, one changed, two new; the other 26 as they were
    second = [r for r in first if r[1] not in ("K003", "K010", "K029")]
    second[0] = ("A", "K000", "9", "2", "changed")
    second += rows_of("A", range(100, 102))
    receipt = feed.load(second)

    assert receipt.status == LOADED
    assert receipt.rows_deleted == 3
    assert receipt.rows_loaded == len(second) == 29
    assert receipt.rows_unchanged == (26 if write == "changed_only" else 0)
    assert feed.table() == as_table(second)


def test_a_snapshot_per_partition_deletes_only_within_the_partitions_its_file_holds(
    tmp_path: Path, write_path: str
) -> None:
    feed = Feed(tmp_path, mode="snapshot", snapshot_scope="partition", max_deletes=2)
    a, b, c = rows_of("A", range(10)), rows_of("B", range(10)), rows_of("C", range(5))
    feed.load(a + b + c)

    # shop B only, three of its rows gone and one new: over max_deletes, counted against the
    # ten rows B held (not the new one, nor the rows of A and C)
    b3 = [r for r in b if r[1] not in ("K004", "K007", "K008")] + rows_of("B", range(20, 21))
    over = feed.load(b3)
    assert over.status == REJECTED
    assert over.reason.startswith(  # type: ignore[union-attr]
        "the snapshot would delete 3 of 10 rows in the 1 partition(s) the file holds (30%), "
        "over max_deletes 2:"
    )

    # shop B only: two of its rows gone, one new; A and C are not in this file
    b2 = [r for r in b if r[1] not in ("K004", "K007")] + rows_of("B", range(20, 21))
    receipt = feed.load(b2)

    assert receipt.status == LOADED
    assert receipt.rows_deleted == 2
    assert feed.table() == as_table(a + b2 + c)


@pytest.mark.parametrize("write", ["all", "changed_only"])
@pytest.mark.parametrize("scope", ["table", "partition"])
def test_a_truncated_snapshot_is_rejected_by_the_guard_with_the_table_unchanged(
    tmp_path: Path, write_path: str, write: str, scope: str
) -> None:
    feed = Feed(tmp_path, mode="snapshot", snapshot_scope=scope, write=write)
    full = rows_of("A", range(100))
    feed.load(full)
    before = feed.table()

    # the upload stopped after 59 rows, and one of them changed on the way
    cut = full[:59]
    cut[0] = ("A", "K000", "1", "2", "changed")
    receipt = feed.load(cut, "truncated.csv")

    assert receipt.status == REJECTED
    assert feed.table() == before
    assert receipt.rows_loaded == receipt.rows_deleted == receipt.rows_unchanged == 0
    assert receipt.rows_rejected == receipt.rows_read == 59
    where = " in the 1 partition(s) the file holds" if scope == "partition" else ""
    assert receipt.reason == (
        f"the snapshot would delete 41 of 100 rows{where} (41%), over max_deletes 10%: a file "
        "that lost rows on the way (a truncated upload) must not empty the table, so nothing "
        "was written. If those rows are really gone, load it again with a higher max_deletes"
    )
    assert (tmp_path / "errors" / "truncated.csv").exists()

    # within the limit: the same file, once max_deletes allows it
    feed.settings["max_deletes"] = "50%"
    (tmp_path / "errors" / "truncated.csv").unlink()
    again = feed.load(cut, "truncated-again.csv")
    assert again.status == LOADED and again.rows_deleted == 41
    assert feed.table() == as_table(cut)


def test_a_snapshot_counts_within_max_deletes_as_a_count(tmp_path: Path, write_path: str) -> None:
    feed = Feed(tmp_path, mode="snapshot", max_deletes=3)
    feed.load(rows_of("A", range(10)))
    assert feed.load(rows_of("A", range(6))).status == REJECTED  # 4 > 3
    assert feed.load(rows_of("A", range(7))).rows_deleted == 3
    assert feed.table() == as_table(rows_of("A", range(7)))


# --- changed_only --------------------------------------------------------------------------------


def test_changed_only_writes_the_new_and_changed_rows_of_a_second_day(
    tmp_path: Path, write_path: str
) -> None:
    feed = Feed(tmp_path, write="changed_only")
    day1 = rows_of("A", range(40)) + rows_of("B", range(10))
    first = feed.load(day1)
    assert (first.rows_loaded, first.rows_unchanged) == (50, 0)
    runs1 = feed.runs()

    day2 = list(day1)
    day2[3] = ("A", "K003", "3.5", "1", "new note")
    day2[17] = ("A", "K017", "", "1", "n")  # a price gone empty is a change too
    day2[45] = ("B", "K005", "5.25", "1", "n")
    day2 += rows_of("C", range(2))
    second = feed.load(day2)

    assert second.status == LOADED
    assert (second.rows_loaded, second.rows_unchanged, second.rows_stale) == (52, 47, 0)
    assert feed.table() == as_table(day2)
    written = {k for k, run in feed.runs().items() if run != runs1.get(k)}
    assert written == {("A", "K003"), ("A", "K017"), ("B", "K005"), ("C", "K000"), ("C", "K001")}

    # the same file once more: nothing to write
    third = feed.load(day2)
    assert (third.rows_loaded, third.rows_unchanged) == (52, 52)


# --- only_if_newer --------------------------------------------------------------------------------


def test_only_if_newer_keeps_the_newest_version_whatever_order_files_come_in(
    tmp_path: Path, write_path: str
) -> None:
    feed = Feed(tmp_path, only_if_newer="version")
    v1 = [(*r[:3], "1", "v1") for r in rows_of("A", range(6))]
    v2 = [(*r[:3], "2", "v2") for r in rows_of("A", range(6))]
    assert feed.load(v2).rows_loaded == 6
    late = feed.load(v1)  # the older file arrives late: nothing of it is written
    assert (late.rows_loaded, late.rows_stale, late.rows_read) == (0, 6, 6)
    assert feed.table() == as_table(v2)

    mixed: list[Row] = [
        ("A", "K000", "0.5", "3", "newer"),  # written
        ("A", "K001", "1.5", "1", "older"),  # stale
        ("A", "K002", "2.5", "2", "v2"),  # equal and the same: unchanged
        ("A", "K003", "9", "2", "other"),  # equal, different: not newer, stale
        ("A", "K004", "4.5", "", "no version"),  # a row without a version never replaces one
        ("A", "K050", "1", "", "new without version"),  # a new row is written, version or not
    ]
    receipt = feed.load(mixed)
    assert (receipt.rows_read, receipt.rows_loaded, receipt.rows_stale) == (6, 3, 3)
    assert receipt.rows_unchanged == 1
    table = feed.table()
    assert table["A", "K000"] == mixed[0]
    assert table["A", "K050"] == mixed[5]
    for k in ("K001", "K002", "K003", "K004"):
        assert table["A", k] == ("A", k, v2[int(k[1:])][2], "2", "v2")

    # a stored row without a version is older than any version
    assert feed.load([("A", "K050", "1", "1", "versioned")]).rows_loaded == 1
    assert feed.table()["A", "K050"] == ("A", "K050", "1", "1", "versioned")


def test_only_if_newer_with_a_snapshot_never_deletes_its_own_stale_rows(
    tmp_path: Path, write_path: str
) -> None:
    feed = Feed(tmp_path, only_if_newer="version", mode="snapshot", max_deletes="50%")
    feed.load(rows_of("A", range(10), version=5))
    old = rows_of("A", range(8), version=4)  # every row stale; two keys gone
    receipt = feed.load(old)
    assert (receipt.rows_stale, receipt.rows_loaded, receipt.rows_deleted) == (8, 0, 2)
    assert feed.table() == as_table(rows_of("A", range(8), version=5))


# --- every mode against a model, with repeated keys under every policy ---------------------------


def model(
    table: dict[tuple[str, str], Row], rows: list[Row], settings: dict[str, Any]
) -> dict[str, int]:
    """What a load does to ``table`` (in place), row by row in file order; its counts."""
    policy = settings.get("duplicates", "last_wins")
    newer_col = settings.get("only_if_newer")
    keeping = newer_col is not None or settings.get("write") == "changed_only"

    def newer(stored: Row, row: Row) -> bool:
        if newer_col is None:
            return True
        return row[3] != "" and (stored[3] == "" or int(row[3]) > int(stored[3]))

    def same(stored: Row, row: Row) -> bool:  # prices as numbers: 1.0 is 1
        return price(stored) == price(row) and stored[3:] == row[3:]

    counts = dict.fromkeys(("loaded", "duplicate", "rejected", "stale", "unchanged"), 0)
    seen: set[tuple[str, str]] = set()
    file_keys: set[tuple[str, str]] = set()
    for row in rows:
        key = (row[0], row[1])
        stored = table.get(key)
        if key in seen:
            if policy == "reject":
                counts["rejected"] += 1
                continue
            counts["duplicate"] += 1
            if policy == "last_wins" and (
                not keeping or (stored is not None and newer(stored, row) and not same(stored, row))
            ):
                table[key] = row
            continue
        seen.add(key)
        file_keys.add(key)
        if stored is None or not keeping:
            table[key] = row
        elif same(stored, row):
            counts["unchanged"] += 1
        elif not newer(stored, row):
            counts["stale"] += 1
            continue
        else:
            table[key] = row
        counts["loaded"] += 1
    if settings.get("mode") == "snapshot":
        gone = [k for k in table if k not in file_keys]
        for k in gone:
            del table[k]
        counts["deleted"] = len(gone)
    return counts


def price(row: Row) -> float | None:
    return None if row[2] == "" else float(row[2])


def random_file(rnd: random.Random, n: int) -> list[Row]:
    """Few keys, so that they repeat near (one batch, one flush) and far; versions that go up
    and down, some empty; prices and notes that change now and then."""
    out: list[Row] = []
    for _ in range(n):
        shop, sku = rnd.choice("AB"), f"K{rnd.randrange(12):03d}"
        version = "" if rnd.random() < 0.1 else str(rnd.randrange(4))
        out.append((shop, sku, rnd.choice(["1", "1.0", "2.5", ""]), version, rnd.choice("xy")))
    return out


@pytest.mark.parametrize("policy", ["last_wins", "first_wins", "reject"])
@pytest.mark.parametrize(
    "modes",
    [
        {"write": "changed_only"},
        {"only_if_newer": "version"},
        {"only_if_newer": "version", "write": "changed_only"},
        {"mode": "snapshot", "write": "changed_only"},
        {"mode": "snapshot"},
    ],
    ids=["changed_only", "only_if_newer", "both", "snapshot-changed_only", "snapshot"],
)
def test_each_mode_and_policy_gives_the_rows_and_counts_of_a_load_row_by_row(
    tmp_path: Path, write_path: str, policy: str, modes: dict[str, Any]
) -> None:
    settings = {
        **modes,
        "duplicates": policy,
        "max_duplicates": "100%",
        "on_error": "skip_rows",
        "max_rejected": "100%",
        "max_deletes": "100%",
    }
    feed = Feed(tmp_path, **settings)
    rnd = random.Random(f"{policy}{sorted(modes.items())}")
    expected: dict[tuple[str, str], Row] = {}
    for day in range(4):
        rows = random_file(rnd, 40)
        counts = model(expected, rows, settings)
        receipt = feed.load(rows)
        got = feed.table()
        # a number reads back as SQLite holds it (1.0 as 1): compare prices as numbers
        assert {k: (price(v), *v[3:]) for k, v in got.items()} == {
            k: (price(v), *v[3:]) for k, v in expected.items()
        }, f"day {day}"
        assert (
            receipt.rows_loaded,
            receipt.rows_duplicate,
            receipt.rows_rejected,
            receipt.rows_stale,
            receipt.rows_unchanged,
            receipt.rows_deleted,
        ) == (
            counts["loaded"],
            counts["duplicate"],
            counts["rejected"],
            counts["stale"],
            counts["unchanged"],
            counts.get("deleted", 0),
        ), f"day {day}"
