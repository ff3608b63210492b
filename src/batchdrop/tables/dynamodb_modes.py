"""The write modes on DynamoDB: ``mode: snapshot``, ``write: changed_only`` (both need to know
what the feed's last load left in the table: feed_state.py) and ``only_if_newer`` (conditional
puts, dynamodb_load.py).

Before the first write, the file is read once more (a *plan* pass: the rows the write pass will
write, nothing written) into a ``Collector``, which fingerprints each item. ``plan`` then takes
one bucket at a time, this file's and the last load's, and finds:

- the keys of the last load that this file lacks (of the whole table, or with
  ``snapshot_scope: partition`` of the partitions the file holds): the snapshot's deletes,
  spilled to a temporary file; ``max_deletes`` is checked on their count, and a file over it is
  rejected before anything is written;
- the items equal to what the last load wrote (``changed_only``): the write pass skips them;
- what the table holds after this load: the new state, written under this run's name, and
  named the feed's state by the ledger in the commit's transaction (``DynamoLedger.record``).

A rerun of a run that crashed makes the same plan (the same file, the same last load): its
writes and deletes are repeated, which DynamoDB takes as no change.
"""

from __future__ import annotations

import re
import tempfile
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as quote
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from ..errors import TransientError
from ..feed_state import PARTS, Buckets, Records, fingerprint, pack, part_name, unpack
from ..outcome import check_deletes
from ..schema import join_key
from .dynamodb_body import value_text

if TYPE_CHECKING:
    from ..config import Config
    from ..state import StateStore
    from .dynamodb_items import ItemCodec

__all__ = ["Collector", "KeyText", "Plan", "feed_slug", "keeps_state", "make_plan"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def keeps_state(config: Config) -> bool:
    """Whether loads of this config compare with the last load (a snapshot, changed_only)."""
    return config.compares_loads


def feed_slug(config: Config) -> str:
    """The feed's name in the state location and the ledger (the table's without ``feeds:``)."""
    name = config.feed if config.feed is not None else f"table-{config.table.table_name}"
    return _UNSAFE.sub("_", name)


def content(row: tuple[Any, ...]) -> int:
    """The fingerprint of a row's values (an item's JSON text is no good: the order of its
    attributes depends on the other rows of its chunk). ``repr`` of the converted values (str,
    int, Decimal, date, datetime, bool, None) is the same in every process."""
    return fingerprint(repr(row))


class KeyText:
    """The DynamoDB JSON of each row's key (``{"pk":{"S":"A1"},"sk":{"N":"3"}}``), and of its
    partition key alone, made a column at a time as ``ItemText`` makes items."""

    def __init__(self, codec: ItemCodec):
        self.codec = codec
        pk, sk = codec.partition_attr, codec.sort_attr
        n = codec.parts[0]
        columns = [codec.fields.index(c) for c in codec.key]
        self._attrs = [(pk, columns[:n])] + ([(sk, columns[n:])] if sk is not None else [])

    def _values(self, rows: Sequence[Sequence[Any]], at: list[int]) -> list[str]:
        if len(at) > 1:
            sep = self.codec.separator
            return [quote(join_key([row[i] for i in at], sep)) for row in rows]
        return [value_text(v) for v in map(itemgetter(at[0]), rows)]

    def texts(self, rows: Sequence[Sequence[Any]]) -> tuple[list[str], list[str]]:
        """(keys, partitions): each row's key item, and its partition key's value."""
        (pk, pat), *rest = self._attrs
        partitions = self._values(rows, pat)
        head = "{" + quote(pk) + ":"
        if not rest:
            return [head + p + "}" for p in partitions], partitions
        sk, sat = rest[0]
        middle = "," + quote(sk) + ":"
        sorts = self._values(rows, sat)
        return [
            head + p + middle + s + "}" for p, s in zip(partitions, sorts, strict=True)
        ], partitions


class Collector:
    """The plan pass's load: every row the write pass would write, fingerprinted into buckets."""

    def __init__(self, codec: ItemCodec, by: str):
        self._keys = KeyText(codec)
        self.buckets = Buckets(by)

    def write(self, rows: list[tuple[Any, ...]], lines: list[int]) -> list[tuple[int, Any]]:
        keys, partitions = self._keys.texts(rows)
        add = self.buckets.add
        for key, row, partition in zip(keys, rows, partitions, strict=True):
            add(fingerprint(key), content(row), fingerprint(partition), key)
        return []

    def finish(self) -> list[tuple[int, Any]]:
        return []

    def abort(self) -> None:
        self.buckets.close()


@dataclass
class Plan:
    """What the write pass does beyond writing every row: skip the ``unchanged`` items (their
    fingerprints, sorted), then delete ``deleted`` keys (their texts in ``deletes``, one per
    line), then commit the state written under ``run_id``, which replaces ``base``."""

    slug: str
    run_id: str
    base: str | None
    by: str
    unchanged: array[int]
    deleted: int
    held: int
    kept: int  # records in the new state
    deletes: Any  # a temporary file, or None

    def is_unchanged(self, row: tuple[Any, ...]) -> bool:
        fps = self.unchanged
        if not fps:
            return False
        fp = content(row)
        i = bisect_left(fps, fp)
        return i < len(fps) and fps[i] == fp

    def delete_keys(self) -> Iterator[str]:
        if self.deletes is None:
            return
        self.deletes.seek(0)
        for line in self.deletes:
            yield line.rstrip("\n")

    def close(self) -> None:
        if self.deletes is not None:
            self.deletes.close()
            self.deletes = None


def folder(slug: str, run_id: str) -> str:
    return f"{slug}.{run_id}"


def make_plan(
    config: Config,
    collector: Collector,
    state: StateStore,
    base: tuple[str, str] | None,
    run_id: str,
    file_name: str,
    *,
    dry: bool = False,
) -> Plan:
    """Compare the file's buckets with the last load's (``base``: its run id and bucketing,
    None for a feed's first load); write the new state; check ``max_deletes``. ``dry``: the
    counts only (no state written, no keys kept)."""
    slug = feed_slug(config)
    by = collector.buckets.by
    snapshot = config.mode == "snapshot"
    by_partition = config.snapshot_scope == "partition"
    previous, again = _previous(state, slug, base, by)
    deletes = tempfile.TemporaryFile("w+", encoding="utf-8", prefix="batchdrop-deletes-")  # noqa: SIM115
    unchanged = array("q")
    deleted = held = kept = 0
    partitions = 0
    new = folder(slug, run_id)
    try:
        for i in range(PARTS):
            cur = collector.buckets.bucket(i)
            prev = previous(i)
            cur_keys = set(cur.keys)
            held_parts = set(cur.partitions) if by_partition else None
            if held_parts is not None:
                partitions += len(held_parts)
            keep: list[int] = []
            for j, (k, p) in enumerate(zip(prev.keys, prev.partitions, strict=True)):
                if k in cur_keys:
                    continue
                in_scope = snapshot and (held_parts is None or p in held_parts)
                if in_scope:
                    if not dry:
                        deletes.write(prev.texts[j] + "\n")
                    deleted += 1
                else:
                    keep.append(j)
            if snapshot:
                held += len(prev) if held_parts is None else _count_in(prev.partitions, held_parts)
            if config.write == "changed_only" and len(prev):
                before = set(prev.items)
                unchanged.extend(fp for fp in cur.items if fp in before)
            cur.add(prev, keep)
            kept += len(cur)
            if not dry:
                state.put(new, part_name(i), pack(cur))
        check_deletes(config, deleted, held, partitions if by_partition else 0, file_name, "items")
    except BaseException:
        deletes.close()
        if not dry:
            state.drop(new)
        raise
    finally:
        collector.buckets.close()
        if again is not None:
            again.close()
    unchanged = array("q", sorted(unchanged))
    return Plan(
        slug,
        run_id,
        base[0] if base else None,
        by,
        unchanged,
        deleted,
        held,
        kept,
        deletes if deleted else _closed(deletes),
    )


def _closed(f: Any) -> Any:
    """None, once ``f`` is closed."""
    f.close()
    return None


def _count_in(partitions: array[int], held: set[int]) -> int:
    return sum(1 for p in partitions if p in held)


def _previous(
    state: StateStore, slug: str, base: tuple[str, str] | None, by: str
) -> tuple[Callable[[int], Records], Buckets | None]:
    """The last load's bucket ``i``, bucketed as this load buckets (a load that bucketed by the
    other fingerprint is bucketed again, once, in temporary files: those, to close)."""
    if base is None:
        return (lambda i: Records()), None
    run_id, base_by = base
    name = folder(slug, run_id)

    def get(i: int) -> Records:
        try:
            return unpack(state.get(name, part_name(i)))
        except FileNotFoundError as e:
            raise TransientError(
                f"the state of the feed's last load (run {run_id}) is missing from "
                f"{state.url}/{name}: batchdrop cannot tell what that load left in the table"
            ) from e

    if base_by == by:
        return get, None
    again = Buckets(by)
    for i in range(PARTS):
        again.add_records(get(i))
    return again.bucket, again
