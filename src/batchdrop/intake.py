"""What an inbound entry must be to be read, how a problem of one file is told apart from any
other, and the names a file gets in the archive and errors locations.

A problem confined to one file's bytes or name (corrupt compression, not a regular file, a name
with "." or ".." segments) rejects that file with its reason; anything else fails its run, which
is retried and, after ``max_attempts``, set aside. Either way the next file goes on.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from urllib.parse import quote

from .errors import DataError
from .ports import FileRef


def check_entry(ref: FileRef) -> None:
    """Refuse, as a data problem of this file, what must never be read or placed as it is."""
    if ref.special:
        raise DataError(
            f"not a regular file but a {ref.special}; only regular files are read", file=ref.name
        )
    bad = sorted({repr(s) for s in ref.name.split("/") if s in ("", ".", "..")})
    if bad:
        raise DataError(
            f"the name has {' and '.join(bad)} path segments, which tools that normalise "
            f"paths would misplace; it is set aside in errors as {safe_name(ref.name)!r}: "
            "upload it again under a plain name",
            file=ref.name,
        )


def safe_name(name: str) -> str:
    """``name``, or, when it has empty, "." or ".." segments, one segment with every "/"
    percent-encoded: a name no tool can normalise into another place."""
    if any(s in ("", ".", "..") for s in name.split("/")):
        return quote(name, safe="")
    return name


def as_data_error(e: BaseException, name: str) -> DataError | None:
    """A problem confined to this one file's bytes, as the DataError that rejects it; None
    when ``e`` is anything else."""
    if isinstance(e, DataError):
        return e
    if isinstance(e, zlib.error | gzip.BadGzipFile | EOFError):
        return DataError(f"the compressed data is corrupt or truncated ({e})", file=name)
    if isinstance(e, PermissionError | IsADirectoryError):
        return DataError(f"the file cannot be read: {e.strerror or e}", file=name)
    if isinstance(e, UnicodeDecodeError | csv.Error):
        return DataError(f"the file cannot be read as text: {e}", file=name)
    return None


def stem(name: str, suffixes: tuple[str, ...]) -> str:
    """The name without its suffix: reports and receipts are named after it."""
    for s in sorted(suffixes, key=len, reverse=True):
        if name.endswith(s):
            return name[: -len(s)]
    return name
