"""The real ``batchdrop`` command, with the load of any file named ``poison*`` failing as an
unexpected bug would: ``python poison.py ARGS…``."""

import sys

from batchdrop import cli
from batchdrop.tables import sqlite_load

write = sqlite_load.SqliteLoad.write


def write_or_fail(self, rows, lines):  # type: ignore[no-untyped-def]
    if self.claim.ref.name.startswith("poison"):
        raise RuntimeError("a bug that only this file meets")
    return write(self, rows, lines)


sqlite_load.SqliteLoad.write = write_or_fail  # type: ignore[method-assign]
sys.argv = ["batchdrop", *sys.argv[1:]]
cli.main()
