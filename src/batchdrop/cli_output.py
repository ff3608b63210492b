"""What the load commands print: one block a file, headed by a line a user can grep (the
verdict, the name, the counts), progress bars for big files, and the waiting files `run` will
not take."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from .report import (
    BUSY,
    FAILED,
    LOADED,
    LOADED_WITH_REJECTS,
    REJECTED,
    SKIPPED,
    Receipt,
    mode_counts,
    units_text,
)

PROGRESS_MIN_BYTES = 4 << 20
#: what happens to a row whose key an earlier row had, by ``duplicates`` policy
KEPT = {"last_wins": "last row kept", "first_wins": "first row kept", "reject": "rejected"}
#: a dry run's verdicts, named by the command rather than by the receipt's status, so that
#: `validate` never says "loaded" whatever the status of a dry run's receipt is called
VALID, VALID_WITH_REJECTS, INVALID = "valid", "valid_with_rejects", "invalid"


def status_style(status: str) -> str:
    return {
        LOADED: "green",
        LOADED_WITH_REJECTS: "yellow",
        REJECTED: "red",
        FAILED: "red",
        SKIPPED: "dim",
        BUSY: "dim",
        VALID: "green",
        VALID_WITH_REJECTS: "yellow",
        INVALID: "red",
    }.get(status, "default")


def verdict_of(r: Receipt, dry_run: bool) -> str:
    """The word that heads a file's block: its status, or for a dry run what it would be."""
    if not dry_run or r.status in (FAILED, SKIPPED, BUSY):
        return r.status
    if r.status == REJECTED:
        return INVALID
    return VALID_WITH_REJECTS if r.rows_rejected else VALID


def counts_of(r: Receipt, duplicates: str, dry_run: bool) -> str:
    """``read · loaded · rejected · duplicate``: they reconcile, and duplicates stand beside
    rejects, with what the duplicates policy kept."""
    loaded = "would load" if dry_run else "loaded"
    counts = (
        f"{r.rows_read} read · {r.rows_loaded} {loaded} · {r.rows_rejected} rejected · "
        f"{r.rows_duplicate} duplicate"
    )
    if r.rows_duplicate and r.status != REJECTED:
        counts += f" (key repeated; {KEPT.get(duplicates, duplicates)})"
    return counts + mode_counts(r, " · ")


def echo_receipt(
    r: Receipt,
    as_json: bool,
    duplicates: str = "last_wins",
    *,
    dry_run: bool = False,
    price: float | None = None,
) -> None:
    """One block per file: a headline (verdict, name, counts) a user can grep, then the reason
    in full, the write units (DynamoDB; a dry run's at ``price`` per million), where the file
    went, the first rejected rows and the rejected-rows report."""
    if as_json:
        click.echo(r.to_json())
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    verdict = verdict_of(r, dry_run or r.dry_run)
    style = status_style(verdict)
    headline = f"[{style}]{verdict}[/{style}]  [bold]{escape(r.file)}[/bold]"
    if r.status not in (SKIPPED, BUSY):
        headline += "  " + escape(counts_of(r, duplicates, dry_run or r.dry_run))
    console.print(headline)
    if r.reason:
        console.print(f"  reason: {r.reason}", markup=False)
    units = units_text(r, price)
    if units:
        console.print(f"  {units}", markup=False)
    if r.moved_to:
        console.print(f"  moved to: {r.moved_to}", markup=False)
    for e in r.errors:
        col = f", column {e['column']!r}" if e["column"] else ""
        console.print(
            f"  line {e['line']}{col}: {e['reason']} (value {e['value']!r})", markup=False
        )
    if r.rows_invalid > len(r.errors):
        console.print(f"  … and {r.rows_invalid - len(r.errors)} more invalid row(s)")
    if r.rejected_rows_report:
        console.print(f"  rejected rows: {r.rejected_rows_report}", markup=False)


@contextmanager
def progress_bar(size: int, label: str, enabled: bool) -> Iterator[Any]:
    """A progress bar on stderr for big files when stderr is a terminal."""
    if not enabled or size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=size)
        yield lambda done: bar.update(task, completed=done)


#: compressed forms batchdrop does not read: setting the suffix to one of them would not help
UNREAD_COMPRESSION = (".zip", ".bz2", ".xz", ".zst", ".7z", ".tar", ".tgz")


def tell_passed_over(pipeline: Any, told: set[str]) -> None:
    """Say once, for each file waiting in inbound that this config does not take, why."""
    passed_over = getattr(pipeline.inbound, "passed_over", None)
    if passed_over is None:  # a store that cannot tell (S3): nothing to say
        return
    suffixes = tuple(pipeline.suffixes)
    for name, why in passed_over(suffixes):
        if name in told:
            continue
        told.add(name)
        takes = f"this config takes {', '.join(suffixes[:-1])} and {suffixes[-1]}"
        ext = why.removeprefix("suffix ").removesuffix(".gz") if why.startswith("suffix ") else ""
        hint = ""
        if ext.endswith(UNREAD_COMPRESSION):
            hint = " — unpack it: batchdrop reads plain and gzip files only"
        elif ext:
            hint = f" — set suffix: {ext}"
        click.echo(f"batchdrop: {name}: not taken ({why}; {takes}{hint})", err=True)


def state_text(rec: dict[str, Any]) -> str:
    """A run's state, and for a run under way or paused, how far it got: "paused: writing,
    line 1,234,568 (45%)"."""
    state = str(rec.get("state") or "")
    progress = rec.get("progress")
    if state not in ("running", "paused") or not isinstance(progress, dict):
        return state
    sharded = progress.get("sharded")
    if isinstance(sharded, dict):  # "running: writing, 12 of 40 shards done"
        from .shards import STEP_NAMES

        step = str(sharded.get("step"))
        text = f"{state}: {STEP_NAMES.get(step, step)}"
        if "done" in sharded:
            return f"{text}, {sharded['done']} of {sharded.get('shards')} shards done"
        return f"{text}, {sharded.get('shards')} shards"
    from .checkpoint import STAGE_NAMES

    stage = STAGE_NAMES.get(str(progress.get("stage")), str(progress.get("stage")))
    text = f"{state}: {stage}, line {int(progress.get('line') or 0) + 1:,}"
    size, offset = int(rec.get("size") or 0), int(progress.get("offset") or 0)
    if size and offset <= size and not str(rec.get("file", "")).endswith(".gz"):
        text += f" ({100 * offset // size}%)"
    return text
