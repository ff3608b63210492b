"""What every ledger records of a run, the same on every backend: times to the microsecond, the
attempt, and an outbox that is empty once the notification went out."""

from __future__ import annotations

import re

from .conftest import CORPUS, Env

MICROSECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_runs_are_recorded_to_the_microsecond_and_leave_nothing_in_the_outbox(env: Env) -> None:
    env.drop("good.csv", (CORPUS / "good.csv").read_bytes())
    pipeline = env.pipeline()
    receipt = pipeline.process("good.csv")
    assert receipt.status == "loaded" and receipt.attempt == 1

    ledger = pipeline.backends.ledger
    run = ledger.get_run(receipt.run_id)
    assert run is not None
    assert MICROSECONDS.match(run["started_at"]), run["started_at"]
    assert MICROSECONDS.match(run["finished_at"]), run["finished_at"]
    assert run["started_at"] <= run["finished_at"]
    (listed,) = ledger.runs(limit=1)
    assert listed["started_at"] == run["started_at"]
    assert ledger.outbox() == [] and ledger.unfinished() == []
