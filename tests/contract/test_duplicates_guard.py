"""A key that collapses a file is a rejection, never a quiet load: max_duplicates, on every
adapter pair. Also what a receipt says when nothing is loaded: a re-drop and a dry run."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batchdrop import passes

from .conftest import Env

HEADER = "student_id,fname,lname,course,credits,grade,enrolled\n"


def csv(rows: list[str]) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


def unique(n: int) -> list[str]:
    return [f"A{10000 + i},N{i},L,Course{i % 7},1,," for i in range(n)]


def collapsing(n: int = 560) -> list[str]:
    """4 students × 3 courses: a key of (student_id, course) holds 12 distinct values."""
    return [f"A{10001 + i % 4},N{i},L,C{i % 3},1,," for i in range(n)]


@pytest.mark.parametrize("policy", ["last_wins", "first_wins"])
def test_a_key_that_collapses_most_rows_rejects_the_file(env: Env, policy: str) -> None:
    env.drop("flights.csv", csv(collapsing()))
    receipt = env.pipeline(env.config(duplicates=policy)).process("flights.csv")

    assert receipt.status == "rejected"
    assert receipt.reason == (
        "548 of 560 rows repeat the key (student_id, course) — 97.9%, more than "
        "max_duplicates (1%): check table.partition_key/sort_key, or raise max_duplicates"
    )
    assert (receipt.rows_read, receipt.rows_loaded, receipt.rows_duplicate) == (560, 0, 548)
    assert receipt.rows_rejected == 12 and receipt.reconciles
    assert env.items() == []
    assert env.where("flights.csv") == ["errors"]
    # the first repeats are listed, each naming the line whose key it repeats
    assert [(e["line"], e["reason"]) for e in receipt.errors[:2]] == [
        (14, "duplicate key: line 2 has the same key"),
        (15, "duplicate key: line 3 has the same key"),
    ]
    report = env.read("errors", "flights.rejected.csv").decode().splitlines()
    assert len(report) == 1 + 100
    assert (
        report[1]
        == "flights.csv,14,student_id+course,A10001 / C0,duplicate key: line 2 has the same key"
    )
    beside = json.loads(env.read("errors", "flights.receipt.json"))
    assert beside["status"] == "rejected" and beside["rows_duplicate"] == 548
    assert beside["reason"] == receipt.reason
    assert beside["rejected_rows_report"] == receipt.rejected_rows_report
    assert [n.status for n in env.notes.sent] == ["rejected"]


def test_one_repeat_in_a_thousand_rows_loads_under_the_default(env: Env) -> None:
    rows = [*unique(999), "A10004,Again,L,Course4,1,,"]  # repeats line 6's key
    env.drop("a.csv", csv(rows))
    receipt = env.pipeline().process("a.csv")

    assert receipt.status == "loaded", receipt.reason
    assert (receipt.rows_read, receipt.rows_loaded, receipt.rows_duplicate) == (1000, 999, 1)
    assert len(env.items()) == 999


def test_max_duplicates_zero_rejects_any_repeat(env: Env) -> None:
    rows = [*unique(999), "A10004,Again,L,Course4,1,,"]
    env.drop("a.csv", csv(rows))
    receipt = env.pipeline(env.config(max_duplicates=0)).process("a.csv")

    assert receipt.status == "rejected"
    assert receipt.reason is not None
    assert receipt.reason.startswith(
        "1 of 1000 rows repeat the key (student_id, course) — 0.1%, more than max_duplicates (0)"
    )
    assert [(e["line"], e["value"]) for e in receipt.errors] == [(1001, "A10004 / Course4")]
    assert env.items() == []


@pytest.mark.parametrize(("repeats", "status"), [(5, "loaded"), (6, "rejected")])
def test_max_duplicates_as_a_count(env: Env, repeats: int, status: str) -> None:
    rows = unique(100) + [f"A{10000 + i},Again,L,Course{i % 7},1,," for i in range(repeats)]
    env.drop("a.csv", csv(rows))
    receipt = env.pipeline(env.config(max_duplicates=5)).process("a.csv")

    assert receipt.status == status, receipt.reason
    assert receipt.rows_duplicate == repeats
    assert len(env.items()) == (100 if status == "loaded" else 0)
    if status == "rejected":
        assert "more than max_duplicates (5)" in (receipt.reason or "")


def test_a_share_of_key_hashes_over_the_limit_is_settled_by_the_real_keys(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key hashes may collide: a file over the limit by hash only still loads."""

    class Colliding(passes.DuplicateFinder):
        def repeated(self) -> Any:
            found = super().repeated()
            self.repeats += 500  # as if many keys shared their hash
            return found

    monkeypatch.setattr(passes, "DuplicateFinder", Colliding)
    rows = [*unique(999), "A10004,Again,L,Course4,1,,"]
    env.drop("a.csv", csv(rows))
    receipt = env.pipeline().process("a.csv")

    assert receipt.status == "loaded", receipt.reason
    assert (receipt.rows_loaded, receipt.rows_duplicate) == (999, 1)
    assert len(env.items()) == 999


def test_validate_rejects_a_collapsing_file_with_the_same_reason(env: Env) -> None:
    env.drop("flights.csv", csv(collapsing()))
    receipt = env.pipeline().process("flights.csv", dry_run=True)

    assert receipt.dry_run and receipt.status == "rejected"
    assert (receipt.reason or "").startswith("548 of 560 rows repeat the key (student_id, course)")
    assert receipt.rows_duplicate == 548 and receipt.errors[0]["line"] == 14
    assert env.where("flights.csv") == ["inbound"] and env.items() == []


def test_validate_says_would_load_never_loaded(env: Env) -> None:
    env.drop("a.csv", csv(unique(3)))
    receipt = env.pipeline().process("a.csv", dry_run=True)

    assert receipt.dry_run and receipt.status == "would_load"
    assert (receipt.rows_read, receipt.rows_loaded) == (3, 3)  # rows that would load
    assert env.items() == [] and env.where("a.csv") == ["inbound"]


def test_a_redrop_says_which_run_processed_it_and_counts_nothing(env: Env) -> None:
    data = csv(unique(3))
    env.drop("a.csv", data)
    first = env.pipeline().process("a.csv")
    env.drop("a.csv", data)
    second = env.pipeline().process("a.csv")

    assert second.status == "already_processed" and second.run_id == first.run_id
    assert second.reason == (
        f"already processed by run {first.run_id} at {first.finished_at} "
        "(loaded: 3 of 3 rows loaded); not loaded again"
    )
    assert (second.rows_read, second.rows_loaded, second.rows_rejected) == (0, 0, 0)
    assert second.reconciles and second.errors == []
    assert len(env.notes.sent) == 1


def test_a_rejected_file_dropped_again_after_a_config_fix_is_loaded(env: Env) -> None:
    data = csv(collapsing(40))
    env.drop("a.csv", data)
    first = env.pipeline().process("a.csv")
    assert first.status == "rejected"

    env.drop("a.csv", data)
    again = env.pipeline().process("a.csv")  # the same config: rejected again, not skipped
    assert again.status == "rejected" and again.run_id != first.run_id

    env.drop("a.csv", data)
    fixed = env.pipeline(env.config(max_duplicates="100%")).process("a.csv")
    assert fixed.status == "loaded", fixed.reason
    assert (fixed.rows_loaded, fixed.rows_duplicate) == (12, 28)
    assert len(env.items()) == 12
