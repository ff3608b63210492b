"""The write units a load consumed reach its receipt once each: summed over the invocations of a
run that paused and went on, and over the shards of a sharded run; their cost at
``aws.write_unit_price``. A table that counts no units (SQLite) leaves them out.

The table is an in-memory stand-in whose loads count units as DynamoDB's replies would (the
DynamoDB table itself is tested against the moto server in tests/aws/test_write_units_on_aws.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchdrop.cli_output import echo_receipt
from batchdrop.pipeline import Pipeline
from batchdrop.ports import Claim
from batchdrop.report import PAUSED, Receipt, dollars, summary, units_text
from batchdrop.shard_runner import LocalShards
from batchdrop.tables.sqlite_ledger import SqliteLedger

from . import test_resumable_passes as resumable
from . import test_shards as sharded

UNITS_PER_ROW = 1.5  # a fraction, as ConsumedCapacity may be


class UnitsTable(resumable.Table):
    """Every load counts ``UNITS_PER_ROW`` for each row it writes; ``charged`` is what every
    load of the table consumed, as DynamoDB would bill it."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[UnitsLoad] = []

    def begin(self, claim: Claim, ledger: Any) -> UnitsLoad:
        load = UnitsLoad(self, claim, ledger)
        self.loads.append(load)
        return load

    @property
    def charged(self) -> float:
        return sum(load.write_units for load in self.loads)


class UnitsLoad(resumable.Load):
    def __init__(self, table: UnitsTable, claim: Claim, ledger: Any):
        super().__init__(table, claim, ledger)
        self.write_units = 0.0

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> list[Any]:
        self.write_units += UNITS_PER_ROW * len(rows)
        return super().write(rows, lines)


def test_a_run_paused_again_and_again_counts_each_invocations_units_once(
    tmp_path: Path,
) -> None:
    body = resumable.partner_file(3000, seed=7)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "f.csv").write_bytes(body)
    backends, state = resumable.Backends(), resumable.State()
    backends.table = UnitsTable()
    runs = 0
    while True:
        config = resumable.config(tmp_path, aws={"write_unit_price": 1.25})
        pipeline = Pipeline(config, backends=backends, notifiers=[])  # type: ignore[arg-type]
        pipeline._state = state  # type: ignore[assignment]
        receipt = pipeline.process("f.csv", deadline=resumable.ticking(3))
        runs += 1
        if receipt.status != PAUSED:
            break
        assert runs < 500
    table = backends.table
    writing = sum(1 for load in table.loads if load.write_units)
    assert runs > 5 and writing > 3  # the write pass itself went on in several invocations
    assert receipt.status == "loaded_with_rejects"
    assert receipt.write_units == table.charged == UNITS_PER_ROW * table.writes
    assert table.writes == receipt.rows_loaded  # no row written twice: each counted once
    assert receipt.write_cost_usd == pytest.approx(table.charged * 1.25 / 1e6)


class ShardBackends:
    def __init__(self, root: Path) -> None:
        self.table = UnitsTable()
        self.ledger = SqliteLedger.open(str(root / "ledger.db"))


def test_a_sharded_run_sums_the_units_of_its_shards_and_of_its_conclusion(
    tmp_path: Path,
) -> None:
    body = sharded.partner_file(3000, seed=3)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "f.csv").write_bytes(body)
    backends = ShardBackends(tmp_path)
    config = sharded.config(tmp_path, shards={"shard_bytes": 8000})
    pipeline = Pipeline(config, backends=backends, notifiers=[])  # type: ignore[arg-type]
    pipeline.dispatch = LocalShards(pipeline, 1)
    receipt = pipeline.process("f.csv")
    table = backends.table
    shards = [load for load in table.loads[:-1] if load.write_units]
    assert len(shards) > 5 and table.loads[-1].write_units > 0  # the held rows' winners
    assert receipt.status == "loaded_with_rejects"
    assert receipt.write_units == table.charged == UNITS_PER_ROW * receipt.rows_loaded
    assert receipt.write_cost_usd == pytest.approx(table.charged * 0.625 / 1e6)


def test_a_table_that_counts_no_units_leaves_them_out(tmp_path: Path) -> None:
    body = resumable.partner_file(300, seed=1)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "f.csv").write_bytes(body)
    backends = resumable.Backends()
    pipeline = Pipeline(resumable.config(tmp_path), backends=backends, notifiers=[])  # type: ignore[arg-type]
    pipeline._state = resumable.State()  # type: ignore[assignment]
    receipt = pipeline.process("f.csv")
    assert receipt.rows_loaded > 0
    assert receipt.write_units is None and receipt.write_cost_usd is None
    assert units_text(receipt) is None and "Write units" not in summary(receipt)


def receipt(**fields: Any) -> Receipt:
    return Receipt(file="a.csv", source="/in/a.csv", version="v", size=1, **fields)


def test_the_receipt_says_units_and_cost_in_plain_words(
    capsys: pytest.CaptureFixture[str],
) -> None:
    loaded = receipt(status="loaded", write_units=40012.0, write_cost_usd=0.0250075)
    assert units_text(loaded) == "write units: 40,012 (~$0.025)"
    assert "Write units: 40,012 (~$0.025)" in summary(loaded)
    dry = receipt(status="would_load", write_units=3.0, write_cost_usd=1.875e-06, dry_run=True)
    assert units_text(dry, 0.625) == "write units: 3, about $0.0000019 at $0.625 per million"
    assert " loaded" not in summary(dry)
    echo_receipt(loaded, False)
    echo_receipt(dry, False, dry_run=True, price=0.625)
    out = capsys.readouterr().out
    assert "  write units: 40,012 (~$0.025)\n" in out
    assert "  write units: 3, about $0.0000019 at $0.625 per million\n" in out
    assert [dollars(x) for x in (0, 12.5, 0.99, 0.5, 2.5e-05, 1234.5)] == [
        "$0",
        "$12.50",
        "$0.99",
        "$0.50",
        "$0.000025",
        "$1,234.50",
    ]
