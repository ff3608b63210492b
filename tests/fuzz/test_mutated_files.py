"""Hundreds of mutated files through the real command: whatever the bytes, each file gets exactly
one outcome with counts that reconcile, leaves inbound, and nothing crashes or grows unbounded.

The mutator is seeded (each case can be replayed from its seed) and starts from the malformed-file
corpus (tests/data/corpus): byte flips, cuts, inserted quotes, delimiters, line breaks, NULs,
invalid UTF-8, repeated lines, spliced files, gzip wrapping and corrupted gzip streams.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import sys
from pathlib import Path

import pytest

from ..rss import run_measured

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
SEEDS = sorted(p for p in CORPUS.iterdir() if p.name.endswith((".csv", ".csv.gz")))
CASES_PER_BATCH = 60
BATCHES = 5  # 300 files in all
PALETTE = [
    b'"',
    b",",
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    "١٢٣".encode(),
    b'""',
    b"A99999",
    b"=cmd|' /C calc'!A0",
    b"x" * 3000,  # beyond the corpus config's max_field_size (1024)
]
OUTCOMES = {"loaded", "loaded_with_rejects", "rejected"}
PEAK_RSS_LIMIT_MB = 80


def seed_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    try:
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError):
        return data  # a broken gzip seed is mutated as it is


def mutate(rng: random.Random, data: bytes, other: bytes) -> tuple[bytes, str]:
    """One to four random edits; the second value names them (for a failure message)."""
    done = []
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(["flip", "cut", "insert", "truncate", "repeat", "splice", "swap", "header"])
        n = len(data)
        if op == "flip" and n:
            i = rng.randrange(n)
            data = data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]
        elif op == "cut" and n:
            i = rng.randrange(n)
            data = data[:i] + data[i + rng.randint(1, 40) :]
        elif op == "insert":
            i = rng.randint(0, n)
            data = data[:i] + rng.choice(PALETTE) * rng.randint(1, 3) + data[i:]
        elif op == "truncate" and n:
            data = data[: rng.randrange(n)]
        elif op == "repeat":
            lines = data.split(b"\n")
            pick = rng.randrange(len(lines))
            lines[pick:pick] = [lines[pick]] * rng.randint(2, 3000)
            data = b"\n".join(lines)
        elif op == "splice":
            data = data[: rng.randint(0, n)] + other[rng.randint(0, len(other)) :]
        elif op == "swap":
            lines = data.split(b"\n")
            rng.shuffle(lines)
            data = b"\n".join(lines)
        elif op == "header":
            data = b"student_id;fname;lname\n" + data.partition(b"\n")[2]
        done.append(op)
    if rng.random() < 0.25:
        data = gzip.compress(data)
        done.append("gzip")
        if rng.random() < 0.4:
            i = rng.randrange(10, max(11, len(data)))
            data = data[:i] + bytes([data[i % len(data)] ^ 0x5A]) + data[i + 1 :]
            done.append("corrupt-gzip")
        elif rng.random() < 0.4:
            data = data[: rng.randrange(2, len(data))]
            done.append("truncate-gzip")
    return data, "+".join(done)


@pytest.mark.parametrize("batch", range(BATCHES))
def test_mutated_files_each_get_one_outcome(tmp_path: Path, batch: int) -> None:
    shutil.copy(CORPUS / "corpus.yaml", tmp_path / "batchdrop.yaml")
    inbound = tmp_path / "inbound"
    inbound.mkdir()
    cases: dict[str, str] = {}
    for i in range(CASES_PER_BATCH):
        seed = batch * 1000 + i
        rng = random.Random(seed)
        base, other = rng.choice(SEEDS), rng.choice(SEEDS)
        data, ops = mutate(rng, seed_bytes(base), seed_bytes(other))
        name = f"case{seed:05d}.csv" + (".gz" if ops.endswith(("gzip", "-gzip")) else "")
        (inbound / name).write_bytes(data)
        cases[name] = f"seed {seed}: {base.name} {ops}"

    code, out, err, peak_mb = run_measured(
        [sys.executable, "-m", "batchdrop", "run", "--once", "--json"], tmp_path
    )
    assert code in (0, 1), err  # loaded or rejected: nothing failed, nothing crashed
    assert "Traceback" not in err and "internal error" not in err, err
    receipts = [json.loads(line) for line in out.splitlines()]
    by_file: dict[str, list[dict]] = {}
    for r in receipts:
        by_file.setdefault(r["file"], []).append(r)
    assert sorted(by_file) == sorted(cases)
    for name, got in by_file.items():
        assert len(got) == 1, cases[name]
        (r,) = got
        assert r["status"] in OUTCOMES, (cases[name], r["reason"])
        assert r["rows_read"] == r["rows_loaded"] + r["rows_rejected"] + r["rows_duplicate"], cases[
            name
        ]
        dest = tmp_path / ("errors" if r["status"] == "rejected" else "archive")
        assert (dest / name).exists(), cases[name]
    assert list(inbound.iterdir()) == []
    assert peak_mb < PEAK_RSS_LIMIT_MB
