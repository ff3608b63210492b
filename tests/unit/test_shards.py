"""A file read as shards ends exactly as the same file read in one piece: the same items, the
same counts, the same rejected-rows report, whatever the policy — with repeated keys far apart
in different shards, invalid rows anywhere, quoted line breaks at shard edges, and stray quotes
that put a cut inside a quoted field.

The table is an in-memory stand-in with the ports' shape (the DynamoDB table is tested on the
moto server elsewhere); the ledger is the real SQLite ledger (it counts the shards done), the
state location a real folder, the file a real file read through the local store and the reader.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import re
from pathlib import Path
from typing import Any

import pytest

from batchdrop.cli_output import state_text
from batchdrop.cli_query import shards_progress
from batchdrop.config import Config, parse_config
from batchdrop.pipeline import Pipeline
from batchdrop.ports import Claim
from batchdrop.shard_runner import LocalShards
from batchdrop.tables.sqlite_ledger import SqliteLedger

from .test_resumable_passes import FIELDS, Load, Table


class Backends:
    def __init__(self, root: Path) -> None:
        self.table = Table()
        self.ledger = SqliteLedger.open(str(root / "ledger.db"))


def config(root: Path, **overrides: Any) -> Config:
    data: dict[str, Any] = {
        "inbound": str(root / "in"),
        "archive": str(root / "archive"),
        "errors": str(root / "errors"),
        "table": {"url": "dynamodb://t", "partition_key": "id"},
        "schema": {"fields": FIELDS},
        "notify": [],
        "on_error": "skip_rows",
        "max_duplicates": "50%",
        "batch_size": 50,
    }
    data.update(overrides)
    return parse_config(data, source="test", environ={})


def partner_file(rows: int, seed: int, bad: float = 0.01, repeat: float = 0.01) -> bytes:
    """Random key order; quoted commas, quotes and line breaks in fields; CRLF line ends;
    invalid rows; keys repeated far apart."""
    rng = random.Random(seed)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["id", "n", "price", "note"])
    ids = [f"K{i}" for i in rng.sample(range(10 * rows), rows)]
    for i in range(rows):
        key = rng.choice(ids[:i]) if i and rng.random() < repeat else ids[i]
        n = -1 if rng.random() < bad else i
        note = rng.choice(["plain", 'a, "quoted" one', "two\nlines", "crlf\r\nx", ""])
        w.writerow([key, n, f"{rng.randrange(10**6)}.{rng.randrange(100):02d}", note])
    return out.getvalue().encode()


def load(root: Path, body: bytes, shard_bytes: int, name: str = "f.csv", **overrides: Any) -> Any:
    (root / "in").mkdir(parents=True, exist_ok=True)
    (root / "in" / name).write_bytes(body)
    backends = Backends(root)
    cfg = config(root, shards={"shard_bytes": shard_bytes}, **overrides)
    pipeline = Pipeline(cfg, backends=backends, notifiers=[])  # type: ignore[arg-type]
    pipeline.dispatch = LocalShards(pipeline, 1)
    receipt = pipeline.process(name)
    report = None
    if receipt.rejected_rows_report:
        report = Path(receipt.rejected_rows_report).read_text()
    leftover = [p for p in (root / "errors").rglob("*") if "_batchdrop" in p.parts and p.is_file()]
    return backends.table, receipt, report, leftover


OUT = (
    "status",
    "rows_read",
    "rows_loaded",
    "rows_rejected",
    "rows_duplicate",
    "errors",
    "report_rows_omitted",
)


@pytest.mark.parametrize("duplicates", ["last_wins", "first_wins", "reject"])
@pytest.mark.parametrize("on_error", ["skip_rows", "reject_file"])
def test_shards_end_as_one_piece_does(
    tmp_path: Path, duplicates: str, on_error: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = partner_file(3000, seed=7)
    one = load(tmp_path / "one", body, 10**9, duplicates=duplicates, on_error=on_error)
    caplog.set_level("INFO", "batchdrop")
    many = load(tmp_path / "many", body, 4000, duplicates=duplicates, on_error=on_error)
    shards = re.search(r"reads it as (\d+) shards", caplog.text)
    assert shards is not None and int(shards.group(1)) >= 20
    for name in OUT:
        assert getattr(many[1], name) == getattr(one[1], name), name
    assert many[0].items == one[0].items
    assert many[2] == one[2]
    if one[2] is not None:  # one report, in line order
        lines = [int(row[1]) for row in csv.reader(io.StringIO(one[2])) if row[1] != "line"]
        assert lines == sorted(lines) and lines
    assert many[3] == []


def test_one_bad_row_in_the_last_shard_writes_nothing(tmp_path: Path) -> None:
    body = partner_file(2000, seed=3, bad=0, repeat=0)
    rows = body.decode().split("\r\n")
    rows[-3] = rows[-3].replace(",", ",-5,", 1).rsplit(",", 1)[0]  # n = -5 on one late row
    body = "\r\n".join(rows).encode()
    table, receipt, _report, leftover = load(tmp_path, body, 3000, on_error="reject_file")
    assert receipt.status == "rejected"
    assert table.writes == 0 and table.items == {}
    assert receipt.rows_read == 2000 and receipt.rows_rejected == 2000
    assert [e["value"] for e in receipt.errors] == ["-5"]
    assert receipt.errors[0]["line"] > 0.95 * body.count(b"\n")  # in the last shard
    assert (tmp_path / "errors" / "f.csv").exists() and not (tmp_path / "in" / "f.csv").exists()
    assert leftover == []


@pytest.mark.parametrize(
    ("duplicates", "kept", "status"),
    [
        ("last_wins", "last", "loaded"),
        ("first_wins", "first", "loaded"),
        ("reject", "first", "loaded_with_rejects"),
    ],
)
def test_a_key_repeated_in_the_first_and_last_shards_ends_as_the_policy_says(
    tmp_path: Path, duplicates: str, kept: str, status: str
) -> None:
    lines = ["id,n,price,note"] + [f"K{i},{i},1.5,row {i}" for i in range(3000)]
    lines.append("K1,99999,2.5,the last row")
    body = ("\n".join(lines) + "\n").encode()
    table, receipt, _report, _ = load(tmp_path, body, 4000, duplicates=duplicates)
    assert receipt.status == status
    assert table.items["K1"][1] == (99999 if kept == "last" else 1)
    assert len(table.items) == 3000
    if duplicates == "reject":
        assert receipt.rows_rejected == 1
        assert receipt.errors[0]["line"] == 3002
        assert "line 3 has the same key" in receipt.errors[0]["reason"]
    else:
        assert receipt.rows_duplicate == 1


def test_a_stray_quote_that_puts_a_cut_inside_a_quoted_field_costs_a_check_not_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "n", "price", "note"])
    for i in range(3000):
        note = 'a 5" screen' if i == 10 else ("two\nlines" if i % 3 else "plain")
        if i == 10:
            out.write(f"K{i},{i},1.0,{note}\n")  # unquoted: the quote count is odd from here
            continue
        w.writerow([f"K{i}", i, "1.0", note])
    body = out.getvalue().encode()
    one = load(tmp_path / "one", body, 10**9)
    caplog.set_level("INFO", "batchdrop")
    many = load(tmp_path / "many", body, 4000)
    assert "ended inside a quoted field" in caplog.text
    for name in OUT:
        assert getattr(many[1], name) == getattr(one[1], name), name
    assert many[0].items == one[0].items


class Crash(Exception):
    pass


def test_a_run_that_dies_mid_write_goes_on_from_the_shards_done(tmp_path: Path) -> None:
    body = partner_file(3000, seed=11)
    one = load(tmp_path / "one", body, 10**9)
    root = tmp_path / "many"
    (root / "in").mkdir(parents=True)
    (root / "in" / "f.csv").write_bytes(body)
    backends = Backends(root)
    cfg = config(root, shards={"shard_bytes": 4000})
    written: list[int] = []
    real_begin = backends.table.begin
    shown: list[str] = []

    def begin(claim: Claim, ledger: Any) -> Load:
        if len(written) == 7:
            rec = backends.ledger.runs()[0]
            shards_progress(backends.ledger, rec)
            shown.append(state_text(rec))  # what `batchdrop runs` shows now
            raise Crash("the consumer died")
        written.append(1)
        return real_begin(claim, ledger)

    backends.table.begin = begin  # type: ignore[method-assign]
    pipeline = Pipeline(cfg, backends=backends, notifiers=[])  # type: ignore[arg-type]
    pipeline.dispatch = LocalShards(pipeline, 1)
    first = pipeline.process("f.csv")
    assert first.status == "failed" and (root / "in" / "f.csv").exists()
    assert re.fullmatch(r"running: writing, 7 of \d\d shards done", shown[0]), shown
    writes_before = backends.table.writes
    assert writes_before > 0

    backends.table.begin = real_begin  # type: ignore[method-assign]
    shard_writes: list[int] = []
    real_write = Load.write

    def counting(self: Load, rows: list[Any], lines: list[int]) -> list[Any]:
        shard_writes.extend(lines)
        return real_write(self, rows, lines)

    Load.write = counting  # type: ignore[method-assign]
    try:
        pipeline = Pipeline(cfg, backends=backends, notifiers=[])  # type: ignore[arg-type]
        pipeline.dispatch = LocalShards(pipeline, 1)
        again = pipeline.process("f.csv")
    finally:
        Load.write = real_write  # type: ignore[method-assign]
    assert again.run_id == first.run_id
    for name in OUT:
        assert getattr(again, name) == getattr(one[1], name), name
    assert backends.table.items == one[0].items
    # the seven shards written before the crash were not written again
    assert writes_before + len(shard_writes) == one[0].writes


def test_a_compressed_file_is_split_once_and_its_shards_end_as_one_piece_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    body = gzip.compress(partner_file(3000, seed=9), mtime=0)
    one = load(tmp_path / "one", body, 10**9, name="f.csv.gz")
    caplog.set_level("INFO", "batchdrop")
    many = load(tmp_path / "many", body, 4000, name="f.csv.gz")
    shards = re.search(r"reads it as (\d+) shards", caplog.text)
    assert shards is not None and int(shards.group(1)) >= 20
    for name in OUT:
        assert getattr(many[1], name) == getattr(one[1], name), name
    assert many[0].items == one[0].items and many[2] == one[2]
    assert many[3] == []  # the pieces went with the run's state


def test_a_compressed_file_of_one_shard_is_read_in_one_piece(tmp_path: Path) -> None:
    body = gzip.compress(partner_file(300, seed=9), mtime=0)
    one = load(tmp_path / "one", body, 10**9, name="f.csv.gz")
    small = load(tmp_path / "small", body, len(body), name="f.csv.gz")  # guessed big enough
    assert small[1].rows_loaded == one[1].rows_loaded and small[0].items == one[0].items
    assert small[3] == []


def test_a_file_compressed_twice_is_not_loaded_by_its_shards_either(tmp_path: Path) -> None:
    body = gzip.compress(gzip.compress(partner_file(3000, seed=9), mtime=0), mtime=0)
    one = load(tmp_path / "one", body, 10**9, name="f.csv.gz")
    many = load(tmp_path / "many", body, 400, name="f.csv.gz")
    assert one[1].status == many[1].status == "rejected"
    assert many[0].writes == 0 and many[3] == []


def test_a_big_file_outside_inbound_is_sharded_and_stays_where_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``batchdrop process ~/big.csv``: the consumers read it where it is; the archive gets a
    copy."""
    from batchdrop.files.local import KeepOriginal

    body = partner_file(3000, seed=5)
    one = load(tmp_path / "one", body, 10**9)
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    (elsewhere / "big.csv").write_bytes(body)
    root = tmp_path / "many"
    backends = Backends(root)
    pipeline = Pipeline(config(root, shards={"shard_bytes": 4000}), backends=backends, notifiers=[])  # type: ignore[arg-type]
    pipeline.dispatch = LocalShards(pipeline, 1)
    store = KeepOriginal(str(elsewhere))
    caplog.set_level("INFO", "batchdrop")
    ref = store.stat("big.csv")
    assert ref is not None
    receipt = pipeline.process_ref(ref, store=store)
    assert "reads it as" in caplog.text
    assert (receipt.status, receipt.rows_loaded) == (one[1].status, one[1].rows_loaded)
    assert backends.table.items == one[0].items
    assert (elsewhere / "big.csv").read_bytes() == body
    assert (root / "archive" / "big.csv").read_bytes() == body


def test_a_throttled_shard_is_tried_again_and_the_load_ends_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard whose writes the table keeps refusing (throttling past the client's retries)
    fails with a retryable error; the runner tries it again after a pause, and the load ends
    as an unthrottled one."""
    from batchdrop import shard_runner
    from batchdrop.errors import TransientError

    monkeypatch.setattr(shard_runner, "RETRY_PAUSE_S", 0.0)
    body = partner_file(3000, seed=13)
    one = load(tmp_path / "one", body, 10**9)
    root = tmp_path / "many"
    (root / "in").mkdir(parents=True)
    (root / "in" / "f.csv").write_bytes(body)
    backends = Backends(root)
    refusals = [0]
    real_begin = backends.table.begin

    def begin(claim: Claim, ledger: Any) -> Load:
        if refusals[0] < 3 and backends.table.writes > 0:  # a later shard, three times
            refusals[0] += 1
            raise TransientError("ProvisionedThroughputExceededException")
        return real_begin(claim, ledger)

    backends.table.begin = begin  # type: ignore[method-assign]
    cfg = config(root, shards={"shard_bytes": 4000})
    pipeline = Pipeline(cfg, backends=backends, notifiers=[])  # type: ignore[arg-type]
    pipeline.dispatch = LocalShards(pipeline, 1)
    receipt = pipeline.process("f.csv")
    assert refusals[0] == 3
    for name in OUT:
        assert getattr(receipt, name) == getattr(one[1], name), name
    assert backends.table.items == one[0].items


def test_a_shard_refused_max_attempts_times_fails_the_run_which_goes_on_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchdrop import shard_runner
    from batchdrop.errors import TransientError

    monkeypatch.setattr(shard_runner, "RETRY_PAUSE_S", 0.0)
    body = partner_file(3000, seed=13)
    root = tmp_path / "many"
    (root / "in").mkdir(parents=True)
    (root / "in" / "f.csv").write_bytes(body)
    backends = Backends(root)

    def begin(claim: Claim, ledger: Any) -> Load:
        raise TransientError("ProvisionedThroughputExceededException")

    backends.table.begin = begin  # type: ignore[method-assign]
    cfg = config(root, shards={"shard_bytes": 4000}, max_attempts=3)
    pipeline = Pipeline(cfg, backends=backends, notifiers=[])  # type: ignore[arg-type]
    pipeline.dispatch = LocalShards(pipeline, 1)
    receipt = pipeline.process("f.csv")
    assert receipt.status == "failed" and "failed 3 times" in (receipt.reason or "")
    assert (root / "in" / "f.csv").exists()  # still in inbound: the next run goes on
