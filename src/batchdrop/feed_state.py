"""What a feed's table holds after its loads, kept by batchdrop for the write modes a table
cannot answer cheaply itself (``mode: snapshot`` and ``write: changed_only`` on DynamoDB,
which has no "the keys this file lacks" but a Scan of the whole table).

For each item a load put in the table (and each one it left there), a *record*: three 64-bit
fingerprints (of the item's key, of the whole item, of its partition key) and the key itself as
DynamoDB JSON, which a later snapshot needs to delete it. The records are split into ``PARTS``
buckets by a fingerprint's low bits, so a load compares one bucket of the last load with one
bucket of its own at a time: memory is a bucket's, not the table's.

A load's records live in the state location's feeds folder
(``_batchdrop/feeds/<feed>.<run_id>/part-NNN``, never expired), written before the load
commits and named by the ledger only once it has: a load that crashes leaves its buckets
unnamed, and the next one compares with the last committed load's.

A bucket on disk is a chunk or more of: the record count (8 bytes), the three fingerprint
columns (8 bytes each per record), the keys' total bytes (8 bytes) and the keys, one per line
(DynamoDB JSON text escapes every line break). Stored buckets are zlib-compressed.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import BinaryIO

#: buckets per load: 1M rows make buckets of ~16K records (~1.5 MB)
PARTS = 64
MASK = PARTS - 1
#: records buffered across all buckets before they go to their files
FLUSH_AT = 1 << 16
_COUNT = struct.Struct("<q")


def fingerprint(text: str) -> int:
    """A 64-bit fingerprint of an item's (or key's) JSON text, the same in every process."""
    digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


@dataclass
class Records:
    """Records in columns: key, item and partition fingerprints, and the keys' JSON texts."""

    keys: array[int] = field(default_factory=lambda: array("q"))
    items: array[int] = field(default_factory=lambda: array("q"))
    partitions: array[int] = field(default_factory=lambda: array("q"))
    texts: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, other: Records, at: list[int] | None = None) -> None:
        """``other``'s records (those at the indexes ``at``, or all)."""
        if at is None:
            self.keys += other.keys
            self.items += other.items
            self.partitions += other.partitions
            self.texts += other.texts
            return
        for mine, theirs in (
            (self.keys, other.keys),
            (self.items, other.items),
            (self.partitions, other.partitions),
        ):
            mine.extend(theirs[i] for i in at)
        self.texts.extend(other.texts[i] for i in at)

    def chunk(self) -> bytes:
        keys = "\n".join(self.texts).encode("utf-8", "surrogatepass")
        return b"".join(
            (
                _COUNT.pack(len(self)),
                self.keys.tobytes(),
                self.items.tobytes(),
                self.partitions.tobytes(),
                _COUNT.pack(len(keys)),
                keys,
            )
        )

    def clear(self) -> None:
        del self.keys[:], self.items[:], self.partitions[:], self.texts[:]


def read_chunks(data: bytes) -> Records:
    """The records of ``data``: one chunk after another."""
    out = Records()
    at = 0
    while at < len(data):
        (n,) = _COUNT.unpack_from(data, at)
        at += 8
        for column in (out.keys, out.items, out.partitions):
            column.frombytes(data[at : at + 8 * n])
            at += 8 * n
        (size,) = _COUNT.unpack_from(data, at)
        at += 8
        if n:
            out.texts += data[at : at + size].decode("utf-8", "surrogatepass").split("\n")
        at += size
    if len(out.texts) != len(out.keys):
        raise ValueError("a bucket of the feed's state is damaged: its keys do not match")
    return out


def pack(records: Records) -> bytes:
    return zlib.compress(records.chunk(), 1)


def unpack(data: bytes) -> Records:
    return read_chunks(zlib.decompress(data))


class Buckets:
    """Records on their way into ``PARTS`` temporary files, by one fingerprint's low bits
    (``by``: "key" or "partition"); read back one bucket at a time."""

    def __init__(self, by: str):
        self.by = by
        self._tmp = tempfile.TemporaryDirectory(prefix="batchdrop-feed-")
        self._files: list[BinaryIO | None] = [None] * PARTS
        self._buffers = [Records() for _ in range(PARTS)]
        self._buffered = 0
        self.count = 0

    def add(self, key: int, item: int, partition: int, text: str) -> None:
        b = self._buffers[(partition if self.by == "partition" else key) & MASK]
        b.keys.append(key)
        b.items.append(item)
        b.partitions.append(partition)
        b.texts.append(text)
        self._buffered += 1
        self.count += 1
        if self._buffered >= FLUSH_AT:
            self.flush()

    def add_records(self, records: Records) -> None:
        for key, item, partition, text in zip(
            records.keys, records.items, records.partitions, records.texts, strict=True
        ):
            self.add(key, item, partition, text)

    def flush(self) -> None:
        for i, buffer in enumerate(self._buffers):
            if not len(buffer):
                continue
            f = self._files[i]
            if f is None:
                f = self._files[i] = open(  # noqa: SIM115 - closed by close()
                    os.path.join(self._tmp.name, f"{i:03d}"), "w+b"
                )
            f.write(buffer.chunk())
            buffer.clear()
        self._buffered = 0

    def bucket(self, i: int) -> Records:
        self.flush()
        f = self._files[i]
        if f is None:
            return Records()
        f.seek(0)
        return read_chunks(f.read())

    def __iter__(self) -> Iterator[Records]:
        for i in range(PARTS):
            yield self.bucket(i)

    def close(self) -> None:
        for f in self._files:
            if f is not None:
                f.close()
        self._files = [None] * PARTS
        self._tmp.cleanup()


def part_name(i: int) -> str:
    return f"part-{i:03d}"
