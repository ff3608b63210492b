"""The duplicate finder of a big file in a process of its own, beside the one that reads it.

Putting each key hash in its partition is a Python loop over every row, and counting the
partitions at the end is another: together they cost as much as a third of parsing the CSV. A
file past ``dedup.SPILL_AT`` rows (the size at which the finder starts using disk anyway) has
its hashes sent down a pipe, eight bytes each, to ``python -m batchdrop.dedup_helper``, which
runs the same ``DuplicateFinder`` on another core while this process goes on reading. At the
end the helper sends back the number of repeats and the repeated hashes; what the finder
answers is the same as in one process (the helper only partitions and counts the hashes it is
given: it never hashes a key itself, so a salted or per-process hash is no matter).

A file of ``EARLY_BYTES`` or more sends its hashes from the first one (none is partitioned
here); a file that never reaches ``SPILL_AT`` rows never starts the helper. Where no helper
can be started, the finder goes on in this process. A helper that dies makes the read fail as
retryable (``TransientError``).
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import tempfile
from array import array
from collections.abc import Iterable
from typing import IO, Any

from .dedup import WIDTH, DuplicateFinder, receive_repeated, send_repeated
from .errors import TransientError
from .spill import HashSet

#: whether a finder may start a helper process: the local runtime (cli.py) says so, where a
#: second core is there to take it; elsewhere the finder stays in one process
ENABLED = False
READ = 1 << 16  # hashes the helper takes from its pipe at a time (512 kB)
PIPE_BYTES = 1 << 20
NATIVE = "l" if struct.calcsize("l") == WIDTH else "q"  # a 64-bit int in struct's native order
#: a file this big is all but sure to pass SPILL_AT rows (40 MB is 1M rows of 40 bytes): its
#: first hashes already go to the helper, which then partitions every one of them
EARLY_BYTES = 16 << 20


def new_finder(size: int = 0) -> DuplicateFinder:
    """A duplicate finder: one that may move to a helper process when that is enabled and
    the machine has another core for it. ``size``: the file's, in bytes; a file of
    ``EARLY_BYTES`` or more has its helper started at the first hashes, not at ``SPILL_AT``."""
    if ENABLED and _cores() > 1:
        return HelperFinder(early=size >= EARLY_BYTES)
    return DuplicateFinder()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on every platform
        return os.cpu_count() or 1


class HelperFinder(DuplicateFinder):
    """A ``DuplicateFinder`` that, at the point where it would first spill to disk, hands its
    hashes and every later one to a helper process."""

    def __init__(self, *, early: bool = False) -> None:
        super().__init__()
        self._proc: subprocess.Popen[bytes] | None = None
        self._errors: IO[bytes] | None = None
        self._no_helper = False  # one could not be started: the finder stays here
        self._early = early  # the helper starts at the first hashes

    def add_many(self, hashes: Iterable[int]) -> None:
        if self._proc is None and self._early:
            self._early = False
            self._start()
        if self._proc is None:
            super().add_many(hashes)  # may start the helper, at ``_spill``
            return
        if isinstance(hashes, array):
            self._send(hashes.tobytes())
            return
        if not isinstance(hashes, list):
            hashes = list(hashes)
        # struct converts an int with the C long's digit loop, no per-item format parsing:
        # a fifth of what an array's append costs
        self._send(struct.pack(f"{len(hashes)}{NATIVE}", *hashes))

    def _spill(self) -> None:
        if self._proc is None and not self._no_helper and not self._runs:
            self._start()
        if self._proc is None:
            super()._spill()
            return
        data = b"".join(self._parts)
        for part in self._parts:
            del part[:]
        self._buffered = 0
        self._send(data)

    def _start(self) -> None:
        package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_dir, env.get("PYTHONPATH")]))
        # closed by close(), which repeated() and the passes always reach
        self._errors = tempfile.TemporaryFile(prefix="batchdrop-helper-")  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "batchdrop.dedup_helper"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._errors,
                env=env,
                bufsize=1 << 16,
            )
        except OSError:
            self._no_helper = True
            self._errors.close()
            self._errors = None
            return
        _widen(self._proc.stdin)

    def _send(self, data: bytes | array[int]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
        except OSError as e:
            raise self._failed(e) from None

    def repeated(self, *, two_cores: bool = False) -> HashSet:
        if self._proc is None:  # in this process, which may have threads: never forked
            return super().repeated()
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        found = HashSet()
        try:
            try:
                proc.stdin.close()
            except OSError as e:
                raise self._failed(e) from None
            repeats = receive_repeated(proc.stdout, found)
            if proc.wait() != 0 or repeats is None:
                raise self._failed(None)
            self.repeats = repeats
            return found
        except BaseException:
            found.close()
            raise
        finally:
            self.close()

    def _failed(self, cause: OSError | None) -> TransientError:
        """Why the helper process failed, in one line (its last line of errors, if any)."""
        why = f"{type(cause).__name__}: {cause}" if cause is not None else ""
        if self._proc is not None and self._errors is not None:
            self._proc.kill()
            self._proc.wait()
            self._errors.seek(0)
            lines = self._errors.read().decode("utf-8", "replace").strip().splitlines()
            why = lines[-1] if lines else why or f"exit status {self._proc.returncode}"
        return TransientError(f"the duplicate finder's helper process stopped ({why})")

    def close(self) -> None:
        super().close()
        proc, self._proc = self._proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):  # a pipe the helper closed first
                        stream.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if self._errors is not None:
            self._errors.close()
            self._errors = None


def _widen(pipe: Any) -> None:
    """A pipe of a megabyte where Linux allows it (64 kB by default): the helper may fall
    behind for a moment (another process on its core) without stopping the reader."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass


def main(stdin: Any = None, stdout: Any = None) -> None:
    """The helper: hashes in (eight bytes each, until the pipe closes), then out the number
    of repeats and each repeated hash."""
    import gc

    gc.disable()  # arrays and ints only: no reference cycles to look for
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout.buffer
    finder = DuplicateFinder()
    while data := stdin.read(WIDTH * READ):
        if len(data) % WIDTH:
            raise SystemExit("the hashes end inside one (the reading process stopped)")
        block = array("q")
        block.frombytes(data)
        finder.add_many(block)
    found = finder.repeated(two_cores=True)  # the reader waits for this: use its core too
    try:
        send_repeated(stdout, finder.repeats, found)
        stdout.flush()
    finally:
        found.close()


if __name__ == "__main__":
    main()
