"""The SQLite writer process's side of its pipe (sqlite_pipe.py): batches are taken off the
pipe while the writer is busy, in order, up to a bound; a closed pipe ends them; and the
writer starts without the modules only its parent needs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from batchdrop.tables.sqlite_pipe import Inbox, Taken, put, took

MESSAGE = ("rows", (b"x" * 20_000, list(range(100))))


@pytest.fixture
def pipe() -> Iterator[tuple[Any, Any]]:
    r, w = os.pipe()
    reader, writer = open(r, "rb", buffering=0), open(w, "wb", buffering=0)  # noqa: SIM115
    yield reader, writer
    # the writer first: an inbox's thread then reads the end of its pipe and stops, and is not
    # left reading a descriptor that the next test's pipe may reuse
    for f in (writer, reader):
        if not f.closed:
            f.close()
    for thread in threading.enumerate():
        if thread.name == "batchdrop-inbox":
            thread.join(30)


def send(writer: Any, count: int, done: threading.Event) -> threading.Thread:
    def run() -> None:
        for i in range(count):
            put(writer, (i, MESSAGE))
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def until(condition: Any) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


def test_the_parent_goes_on_while_the_writer_takes_nothing(pipe: tuple[Any, Any]) -> None:
    """2 MB of batches, 30 times what the pipe holds, are sent while nothing is taken."""
    reader, writer = pipe
    inbox = Inbox(reader, max_bytes=8 << 20)
    done = threading.Event()
    send(writer, 100, done)
    until(done.is_set)
    writer.close()
    assert [inbox.get()[0] for _ in range(100)] == list(range(100))
    with pytest.raises(EOFError):
        inbox.get()


def test_held_batches_stop_at_the_bound_and_go_on_as_they_are_taken(
    pipe: tuple[Any, Any],
) -> None:
    reader, writer = pipe
    bound = 200_000
    inbox = Inbox(reader, max_bytes=bound)
    done = threading.Event()
    send(writer, 100, done)
    until(lambda: inbox._bytes >= bound)
    time.sleep(0.2)  # room for the reader to overrun, were it unbounded
    assert not done.is_set()
    assert bound <= inbox._bytes < bound + 25_000  # one message past the bound at most
    got = [inbox.get()[0] for _ in range(100)]
    assert got == list(range(100))
    until(done.is_set)


def test_a_parent_that_dies_mid_file_ends_the_batches_after_the_last_whole_one(
    pipe: tuple[Any, Any],
) -> None:
    reader, writer = pipe
    inbox = Inbox(reader, max_bytes=1 << 20)
    for i in range(3):
        put(writer, (i, MESSAGE))
    writer.write((10**6).to_bytes(8, "little") + b"cut short")  # a message the parent never ended
    writer.close()
    assert [inbox.get()[0] for _ in range(3)] == [0, 1, 2]
    with pytest.raises(EOFError):
        inbox.get()


def test_the_writer_process_starts_without_the_config_or_aws() -> None:
    """It starts as a load begins, so its imports are paid by every big file: pydantic (the
    config) or boto3 would add a fifth of a second and tens of MB to each."""
    code = (
        "import sys, batchdrop.tables.sqlite_load; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'boto3', 'botocore', 'click', 'batchdrop'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "batchdrop.tables.sqlite_load" in loaded
    assert not {
        m for m in loaded if not m.startswith(("batchdrop.tables.", "batchdrop.errors"))
    } - {
        "batchdrop",
        "batchdrop.tables",
    }


def test_taken_counts_the_writers_batches_and_closes_once() -> None:
    taken = Taken()
    assert taken.taken() == 0  # nothing written yet: no wait
    for _ in range(5):
        took(taken.writer_fd)
    took(None)
    assert taken.taken() == 5
    taken.handed_over()
    taken.close()
    other = os.open(os.devnull, os.O_RDONLY)  # may take the number just closed
    try:
        taken.close()  # a load closed twice (commit, then abort) leaves that file alone
        os.fstat(other)
    finally:
        os.close(other)
