"""What a receipt's notification text says when nothing was loaded: a dry run, a re-drop."""

from __future__ import annotations

from batchdrop.report import (
    LOADED,
    LOADED_WITH_REJECTS,
    REJECTED,
    Receipt,
    already_processed,
    as_dry_run,
    subject,
    summary,
)


def receipt(status: str, **counts: int) -> Receipt:
    return Receipt(
        file="in/a.csv", source="/in/a.csv", version="v1", size=10, status=status, **counts
    )


def test_a_dry_run_says_would_load_and_keeps_a_rejection_a_rejection() -> None:
    ok = as_dry_run(receipt(LOADED, rows_read=3, rows_loaded=3))
    partly = as_dry_run(receipt(LOADED_WITH_REJECTS, rows_read=3, rows_loaded=2, rows_rejected=1))
    bad = as_dry_run(receipt(REJECTED, rows_read=3, rows_rejected=3))

    assert (ok.status, partly.status, bad.status) == (
        "would_load",
        "would_load_with_rejects",
        "rejected",
    )
    assert ok.dry_run and partly.dry_run and bad.dry_run
    assert subject(ok) == "batchdrop: a.csv would load (3/3 rows)"
    assert "Rows:       3 read, 2 would load, 1 rejected, 0 duplicate" in summary(partly)
    assert " loaded" not in summary(ok)


def test_a_redrop_counts_nothing_and_names_the_run_before() -> None:
    earlier = receipt(LOADED, rows_read=560, rows_loaded=560).to_dict()
    earlier["finished_at"] = "2026-11-28T06:00:00.000000Z"
    again = already_processed(receipt(LOADED, rows_read=560, rows_loaded=560), "R1", earlier)

    assert again.status == "already_processed" and again.run_id == "R1"
    assert again.reason == (
        "already processed by run R1 at 2026-11-28T06:00:00.000000Z "
        "(loaded: 560 of 560 rows loaded); not loaded again"
    )
    assert (again.rows_read, again.rows_loaded) == (0, 0)
    assert "560 read" not in summary(again)
    assert already_processed(receipt(LOADED), "R2", None).reason == (
        "already processed by run R2; not loaded again"
    )
