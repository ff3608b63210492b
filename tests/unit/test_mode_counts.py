"""The write modes' counts are shown where a receipt is read: the CLI's headline and the
notification's text; nothing is added when no mode did anything."""

from __future__ import annotations

from batchdrop.cli_output import counts_of
from batchdrop.report import Receipt, summary


def receipt(**counts: int) -> Receipt:
    r = Receipt(file="day2.csv", source="/in/day2.csv", version="v", size=1, status="loaded")
    for name, n in counts.items():
        setattr(r, name, n)
    return r


def test_stale_unchanged_and_deleted_rows_are_shown_when_there_are_some() -> None:
    r = receipt(rows_read=4, rows_loaded=3, rows_stale=1, rows_unchanged=1, rows_deleted=7)
    assert counts_of(r, "last_wins", dry_run=False) == (
        "4 read · 3 loaded · 0 rejected · 0 duplicate · 1 stale · 1 unchanged · 7 deleted"
    )
    assert "Rows:       4 read, 3 loaded, 0 rejected, 0 duplicate, 1 stale, 1 unchanged, " in (
        summary(r)
    )
    assert "7 deleted" in summary(r)


def test_nothing_is_added_without_a_write_mode() -> None:
    r = receipt(rows_read=4, rows_loaded=4)
    assert (
        counts_of(r, "last_wins", dry_run=False) == "4 read · 4 loaded · 0 rejected · 0 duplicate"
    )
    assert "Rows:       4 read, 4 loaded, 0 rejected, 0 duplicate\n" in summary(r)
