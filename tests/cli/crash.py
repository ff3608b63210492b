"""Run one file and die like kill -9 at a chosen point: ``python crash.py CONFIG FILE POINT``.

os._exit skips every cleanup, as a killed process would: no rollback, no finally blocks.
"""

import os
import sys

from batchdrop.config import load_config
from batchdrop.files.local import LocalStore
from batchdrop.pipeline import Pipeline
from batchdrop.tables import sqlite_load

point = sys.argv[3]
if point.endswith("-writer"):  # the same, with the rows written by the SQLite writer process
    sqlite_load.WRITER_MIN_BYTES = 0
    point = point.removesuffix("-writer")
    Load = sqlite_load.WriterLoad
else:
    Load = sqlite_load.SqliteLoad  # type: ignore[assignment,misc]


def die() -> None:
    os._exit(137)


if point == "mid-write":
    write = Load.write
    calls = [0]

    def write_then_die(self, rows, lines):  # type: ignore[no-untyped-def]
        out = write(self, rows, lines)
        calls[0] += 1
        if calls[0] == 3:
            die()
        return out

    Load.write = write_then_die  # type: ignore[method-assign]
elif point == "after-commit":
    commit = Load.commit

    def commit_then_die(self, receipt):  # type: ignore[no-untyped-def]
        commit(self, receipt)
        die()

    Load.commit = commit_then_die  # type: ignore[method-assign]
elif point == "after-move":
    move = LocalStore.move

    def move_then_die(self, ref, dest, name=None):  # type: ignore[no-untyped-def]
        move(self, ref, dest, name)
        die()

    LocalStore.move = move_then_die  # type: ignore[method-assign]

elif point == "after-link":  # the archive has the file; inbound still has it too
    import batchdrop.files.local as local

    link = local.os.link

    def link_then_die(src, dst, **kw):  # type: ignore[no-untyped-def]
        link(src, dst, **kw)
        die()

    local.os.link = link_then_die  # type: ignore[assignment]
elif point == "before-notify":  # recorded done; nothing sent yet
    Pipeline._notify = lambda self, receipt: die()  # type: ignore[method-assign]

Pipeline(load_config(sys.argv[1])).process(sys.argv[2])
sys.exit("the crash point was never reached")
