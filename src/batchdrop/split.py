"""A compressed file cut into plain pieces, in one streamed pass, so its shards run side by side.

A shard of a plain file starts with a ranged read at its offset; a gzip stream cannot be entered
in the middle, so every shard of a compressed file would inflate all the bytes before its own.
``split`` inflates the file once instead and writes each shard's bytes as an object of the run's
state location: ``piece-000000.csv`` (with the header), ``piece-000001.csv``, ... Their
concatenation is the uncompressed file, byte for byte, and each ends where ``segments.plan``
would cut the uncompressed file: the first line feed at even quote parity at or after each
multiple of ``every``. Piece ``i`` is then read as the segment that starts at ``offset`` after
``line`` lines.

The pass holds one piece at a time (a state object is put whole) and applies the limits the
reader applies (``limits.max_bytes``, ``limits.max_compression_ratio``), with the reader's
messages. The index ``pieces.json`` is emptied first and written last: a split stopped midway
has none, and is done again from the top; the pieces it rewrites have the same names and bytes.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import BinaryIO, cast

from .config import Config
from .errors import DataError
from .intake import as_data_error
from .reader import open_segment
from .segments import Cutter, cut_reason
from .state import StateStore

INDEX = "pieces.json"
#: uncompressed bytes handed from the inflater to the cutter at a time
BLOCK = 1 << 18


@dataclass(frozen=True)
class Piece:
    """One state object holding a byte range of the uncompressed file."""

    name: str  # the state object's name, e.g. "piece-000003.csv"
    offset: int  # where the piece starts in the uncompressed file
    line: int  # physical lines of the uncompressed file before it
    size: int  # its bytes


def piece_name(index: int) -> str:
    return f"piece-{index:06d}.csv"


def split(
    stream: BinaryIO,
    config: Config,
    file_name: str,
    *,
    state: StateStore,
    run_id: str,
    every: int,
    size: int = 0,
    check: Callable[[], None] | None = None,
) -> list[Piece]:
    """Cut the file that ``stream`` holds from byte 0 (gzip or plain, as the reader tells them
    apart) into pieces of about ``every`` uncompressed bytes, put them in ``state`` under
    ``run_id``, then the index. ``size``: the file's size as stored (0: unknown), which bounds
    what it may expand to; ``check`` is called every few megabytes (it raises to stop: the
    deadline). A file the reader refuses (a bomb, corrupt compression) raises the reader's
    DataError, naming ``file_name``; a file whose encoding cannot be cut is one piece."""
    if every < 1:
        raise ValueError("every must be at least 1")
    opened = open_segment(stream, config, file_name, size=size, check=check)
    # the bytes below the decoder, counted against the limits as the reader counts them
    raw = cast(io.TextIOWrapper, opened.text).detach()
    quote = ord(config.csv.quotechar) if cut_reason(config) is None else None
    # an index left by an earlier split of this run no longer tells which pieces are whole
    state.put(run_id, INDEX, b"null")
    pieces: list[Piece] = []
    offset = line = 0
    rest = b""
    while True:
        # bytes from here to the next multiple of ``every``, as ``segments.plan`` counts them
        target = (-(-offset // every) * every or every) - offset
        cutter = Cutter(
            raw,
            quote=quote or 0x22,
            want_cut=None if quote is None else _reached(target),
            head=rest,
        )
        data = _read_piece(cutter, target, file_name, line)
        if data or not pieces:  # a cut on the file's last byte leaves nothing after it
            piece = Piece(piece_name(len(pieces)), offset, line, len(data))
            state.put(run_id, piece.name, data)
            pieces.append(piece)
        del data  # the next piece is read with this one gone
        offset += cutter.passed
        line += cutter.lines
        if not cutter.cut:
            break
        rest = cutter.rest
    state.put(run_id, INDEX, _index_bytes(file_name, every, pieces))
    return pieces


def _reached(target: int) -> Callable[[int], bool]:
    return lambda passed: passed >= target


def _read_piece(cutter: Cutter, target: int, file_name: str, line: int) -> bytes:
    """The cutter's bytes up to its cut (or the end), read in blocks that end on ``target``
    so that the cut is sought from there on. A file that cannot be read raises the DataError
    the reader raises for it, at the line after the last one read (``line`` before the piece)."""
    piece = io.BytesIO()
    buf = memoryview(bytearray(BLOCK))
    try:
        while n := cutter.readinto(buf[: min(BLOCK, max(target - cutter.passed, 0) or BLOCK)]):
            piece.write(buf[:n])
    except DataError as e:  # a limit: the reader's message, without the file's name
        raise DataError(e.reason, file=file_name, line=line + cutter.lines + 1) from None
    except (OSError, EOFError) as e:
        why = f"the file cannot be read: {e}"
        raise DataError(why, file=file_name, line=line + cutter.lines + 1) from None
    except zlib.error as e:
        error = as_data_error(e, file_name)
        assert error is not None
        raise DataError(error.reason, file=file_name, line=line + cutter.lines + 1) from None
    return piece.getvalue()  # the buffer itself, not a copy


def _index_bytes(file_name: str, every: int, pieces: list[Piece]) -> bytes:
    data = {"file": file_name, "every": every, "pieces": [list(astuple(p)) for p in pieces]}
    return json.dumps(data).encode()


def pieces_of(state: StateStore, run_id: str) -> list[Piece] | None:
    """The pieces of the run's finished split, from its index; None when none finished."""
    try:
        data = json.loads(state.get(run_id, INDEX))
    except FileNotFoundError:
        return None
    if data is None:  # a split under way, or stopped
        return None
    return [Piece(str(n), int(o), int(ln), int(s)) for n, o, ln, s in data["pieces"]]
