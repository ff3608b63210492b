"""Peak RSS of a command, measured from outside and counting only that command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Linux keeps a child's ru_maxrss across exec, and a child forked from pytest starts with
# pytest's resident set: a bare interpreter (-S) forks the command and reports its figures.
LAUNCHER = """
import os, sys
result, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(result, "w") as f:
    f.write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_measured(argv: list[str], cwd: Path, timeout: float = 300) -> tuple[int, str, str, float]:
    """Run ``argv`` in ``cwd``: its exit code, output, errors and peak RSS in MB (its own and
    its children's, such as the SQLite writer process)."""
    result = cwd / ".rusage"
    proc = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, str(result), *argv],
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
    )
    maxrss_kb, code = result.read_text().split()
    result.unlink()
    return (
        int(code),
        proc.stdout.decode("utf-8"),  # strict: the command must print valid UTF-8
        proc.stderr.decode("utf-8", "replace"),
        int(maxrss_kb) / 1024,
    )
