"""The error tree.

- ``ConfigError``: the config (or a command's arguments) is wrong; nothing was processed.
- ``DataError``: a file cannot be loaded as it is (bad header, not CSV); the file is rejected.
- ``TransientError``: the outside world failed (throttling, network, a lock held too long);
  the file stays where it is and a retry may succeed.

``RowError`` is not an exception: a bad row is data, collected and reported, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass


class BatchdropError(Exception):
    """Base of every error batchdrop raises on purpose."""

    exit_code = 1


class ConfigError(BatchdropError):
    """The config file or a command-line argument is wrong."""

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None):
        self.key = key
        self.source = source
        where = ": ".join(p for p in (source, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class DataError(BatchdropError):
    """A whole file is unusable (its header, its encoding, its compression)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ):
        self.reason = message
        self.file = file
        self.line = line
        self.column = column
        super().__init__(self.where() + message)

    def where(self) -> str:
        parts = [self.file or ""]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.column:
            parts.append(f"column {self.column!r}")
        text = ", ".join(p for p in parts if p)
        return f"{text}: " if text else ""


class TransientError(BatchdropError):
    """A retry may succeed: throttling, a network fault, a lock held by another process."""

    exit_code = 3


@dataclass(frozen=True, slots=True)
class RowError:
    """One rejected row: where it is, which column, what value, and why."""

    line: int
    column: str
    value: str
    reason: str

    MAX_VALUE = 80

    def short_value(self) -> str:
        v = self.value
        return v if len(v) <= self.MAX_VALUE else v[: self.MAX_VALUE - 1] + "…"

    def describe(self, file: str = "") -> str:
        head = f"{file}, " if file else ""
        col = f", column {self.column!r}" if self.column else ""
        return f"{head}line {self.line}{col}: {self.reason} (value {self.short_value()!r})"

    def to_dict(self) -> dict[str, object]:
        return {
            "line": self.line,
            "column": self.column,
            "value": self.short_value(),
            "reason": self.reason,
        }
