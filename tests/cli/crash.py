"""Run one file and die like kill -9 at a chosen point: ``python crash.py CONFIG FILE POINT``.

os._exit skips every cleanup, as a killed process would: no rollback, no finally blocks.
"""

import os
import sys

from batchdrop.config import load_config
from batchdrop.files.local import LocalStore
from batchdrop.pipeline import Pipeline
from batchdrop.tables import sqlite

point = sys.argv[3]


def die() -> None:
    os._exit(137)


if point == "mid-write":
    write = sqlite.SqliteLoad.write
    calls = [0]

    def write_then_die(self, rows, lines):  # type: ignore[no-untyped-def]
        out = write(self, rows, lines)
        calls[0] += 1
        if calls[0] == 3:
            die()
        return out

    sqlite.SqliteLoad.write = write_then_die  # type: ignore[method-assign]
elif point == "after-commit":
    commit = sqlite.SqliteLoad.commit

    def commit_then_die(self, receipt):  # type: ignore[no-untyped-def]
        commit(self, receipt)
        die()

    sqlite.SqliteLoad.commit = commit_then_die  # type: ignore[method-assign]
elif point == "after-move":
    move = LocalStore.move

    def move_then_die(self, ref, dest, name=None):  # type: ignore[no-untyped-def]
        move(self, ref, dest, name)
        die()

    LocalStore.move = move_then_die  # type: ignore[method-assign]

Pipeline(load_config(sys.argv[1])).process(sys.argv[2])
sys.exit("the crash point was never reached")
