"""What a split promises of its pieces, checked the same way on every state store."""

from __future__ import annotations

import csv
import importlib.util
import io
import random
from pathlib import Path

import pytest

from batchdrop.segments import plan
from batchdrop.split import Piece, pieces_of
from batchdrop.state import StateStore

RUN = "20261127T084730.123Z-3f9a1c"


def tricky(rows: int, seed: int = 7) -> bytes:
    """A UTF-8 file with a BOM and CRLF line ends whose quoted fields hold commas, doubled
    quotes, CRLF, bare LF and bare CR; some rows unquoted."""
    rnd = random.Random(seed)
    out = ["\ufeffa,b\r\n"]
    for i in range(rows):
        kind = rnd.randrange(5)
        if kind == 0:
            out.append(f"{i},plain {rnd.random()}\r\n")
        elif kind == 1:
            out.append(f'{i},"comma, and ""quotes"" {rnd.random()}"\r\n')
        elif kind == 2:
            out.append(f'"{i}","two\r\nlines, é {rnd.random()}"\r\n')
        elif kind == 3:
            out.append(f'{i},"lf\nand cr\rinside"\r\n')
        else:
            out.append(f'{i},""\r\n')
    return "".join(out).encode()


def rows_of(data: bytes, bom: bool = True) -> list[list[str]]:
    text = data.decode("utf-8-sig" if bom else "utf-8")
    return list(csv.reader(io.StringIO(text, newline=""), strict=True))


def physical_lines(data: bytes) -> int:
    """Lines as the csv reader counts them: CR, LF and CRLF each end one."""
    return len(io.StringIO(data.decode("utf-8", "surrogateescape"), newline="").readlines())


def check_pieces(state: StateStore, pieces: list[Piece], data: bytes, every: int) -> None:
    """Everything a split promises about ``pieces`` of the uncompressed ``data``."""
    blobs = [state.get(RUN, p.name) for p in pieces]
    assert b"".join(blobs) == data
    assert [p.name for p in pieces] == [f"piece-{i:06d}.csv" for i in range(len(pieces))]
    assert [p.size for p in pieces] == [len(b) for b in blobs]
    assert [(p.offset, p.line) for p in pieces[1:]] == plan(io.BytesIO(data), every)
    offset = lines = 0
    for p, blob in zip(pieces, blobs, strict=True):
        assert (p.offset, p.line) == (offset, lines)
        offset, lines = offset + len(blob), lines + physical_lines(blob)
    for i, blob in enumerate(blobs[:-1]):
        assert blob.endswith(b"\n") and blob.count(b'"') % 2 == 0
        assert len(blob) > 0 and pieces[i + 1].offset >= (i + 1) * every
    rows = [r for i, b in enumerate(blobs) for r in rows_of(b, bom=i == 0)]
    assert rows == rows_of(data)
    assert pieces_of(state, RUN) == pieces


def public_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"{package} is not installed: pip install -e '.[dev]'")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    assert path.is_file(), f"{package} no longer ships {relative}"
    return path
