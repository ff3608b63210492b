"""The SQLite database file the local table and its ledger share: connections, names, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import ConfigError, TransientError

RUNS = "_batchdrop_runs"
RUN_COL = "_batchdrop_run"
BUSY_TIMEOUT_S = 60.0


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.OperationalError as e:
        raise translate(e, path) from None
    except sqlite3.DatabaseError as e:
        raise ConfigError(f"{path} is not a SQLite database ({e})") from None
    return conn


def translate(e: sqlite3.Error, path: str) -> Exception:
    text = str(e)
    if "locked" in text or "busy" in text:
        return TransientError(
            f"{path}: the database is locked by another batchdrop process "
            f"(waited {BUSY_TIMEOUT_S:.0f} s); try again"
        )
    return ConfigError(f"{path}: {text}")
