"""What crosses between a load and its SQLite writer process (sqlite_load.py): messages on a
pipe, each its length and then its ``marshal`` bytes.

The writer reads its pipe on a thread of its own (``Inbox``): while SQLite flushes staged rows
into the table, which can take a second, the parent goes on parsing and its batches wait
here, up to ``max_bytes``, instead of filling the pipe and stopping the parent. Past that
bound the parent waits, so memory stays flat whatever the file's size.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any, BinaryIO

#: repeats the writer process holds in memory (and sends back in one message) at most
REPEATS_PER_MESSAGE = 4096
Repeats = list[tuple[int, Any]]


def put(stream: BinaryIO, message: Any) -> None:
    """One message: its length, then its bytes, in one write. Messages hold only bytes,
    tuples, lists, strings, numbers and None, so ``marshal`` does, and it is quicker than
    pickle both ways."""
    data = marshal.dumps(message)
    stream.write(len(data).to_bytes(8, "little") + data)
    stream.flush()


def get(stream: BinaryIO) -> Any:
    return marshal.loads(_read_message(stream))


def _read_message(stream: BinaryIO) -> bytes:
    head = _read_exactly(stream, 8)
    return _read_exactly(stream, int.from_bytes(head, "little"))


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not k:
            raise EOFError
        got += k
    return bytes(buf)


class Taken:
    """How many batches the writer has taken, counted by the parent: the writer writes a
    byte to a pipe of their own for each (``took``), and the parent reads them without
    waiting. Sent minus taken is how far behind the writer is."""

    def __init__(self) -> None:
        self.fd, self.writer_fd = os.pipe()
        os.set_blocking(self.fd, False)
        self.count = 0

    def taken(self) -> int:
        with contextlib.suppress(OSError):  # nothing to read yet (or closed)
            while got := len(os.read(self.fd, 1 << 16)):
                self.count += got
        return self.count

    def handed_over(self) -> None:
        """The writer has its end (or failed to start): this process's copy is closed."""
        os.close(self.writer_fd)

    def close(self) -> None:
        """Closes this process's end, once: a load may be closed twice (commit, then abort),
        and closing a number twice could close another file that took it."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def took(fd: int | None) -> None:
    """The writer's side of ``Taken``: one batch taken. Never waits: the parent reads as it
    sends, and a byte lost to a full pipe only makes the writer look further behind."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(fd, b".")


class Inbox:
    """The writer's messages, read off ``stream`` by a thread and held until ``get``."""

    def __init__(self, stream: BinaryIO, max_bytes: int):
        self._stream, self._max = stream, max_bytes
        self._held: deque[bytes] = deque()
        self._bytes = 0
        self._ended = False  # the pipe closed, or reading it failed
        self._changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, name="batchdrop-inbox", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                data = _read_message(self._stream)
                with self._changed:
                    while self._bytes >= self._max:
                        self._changed.wait()
                    self._held.append(data)
                    self._bytes += len(data)
                    self._changed.notify_all()
        except (EOFError, OSError, ValueError):
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def get(self) -> Any:
        """The next message; EOFError once the pipe closed and every message was taken."""
        with self._changed:
            while not self._held and not self._ended:
                self._changed.wait()
            if not self._held:
                raise EOFError
            data = self._held.popleft()
            self._bytes -= len(data)
            self._changed.notify_all()
        return marshal.loads(data)


class RepeatSpool:
    """The writer process's repeats: in memory up to REPEATS_PER_MESSAGE, then in a temporary
    file as marshalled parts; read back a part at a time, oldest first."""

    def __init__(self) -> None:
        self._part: Repeats = []
        self._file: BinaryIO | None = None
        self._sending: Iterator[Repeats] | None = None

    def add(self, repeats: Repeats) -> None:
        self._part += repeats
        if len(self._part) >= REPEATS_PER_MESSAGE:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="batchdrop-repeats-")  # noqa: SIM115
            put(self._file, self._part)
            self._part = []

    def next_part(self) -> Repeats | None:
        """The next part of the repeats, or None once all were given."""
        if self._sending is None:
            self._sending = self._parts()
        return next(self._sending, None)

    def _parts(self) -> Iterator[Repeats]:
        if self._file is not None:
            self._file.seek(0)
            while True:
                try:
                    yield get(self._file)
                except EOFError:
                    break
        yield self._part

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
