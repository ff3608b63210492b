"""A run's rejected-rows report, read where the run placed it: a file below the errors folder,
or an object below the errors location on S3. Only ``*.rejected.csv`` inside the config's
errors location is ever opened (a ledger record names the report; the page never opens a path
or key it was handed by a request)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config

SUFFIX = ".rejected.csv"
CHUNK = 64 * 1024


class NoReport(Exception):
    """The run has no report, or it is not where the errors location says reports are."""


def chunks(config: Config, where: str | None) -> Iterator[bytes]:
    """The report's bytes, a chunk at a time (the first chunk is read before this returns, so
    a missing report raises NoReport here, not halfway through a response)."""
    if not where or not where.endswith(SUFFIX):
        raise NoReport("this run has no rejected-rows report")
    if where.startswith("s3://"):
        return _s3_chunks(config, where)
    errors = Path(config.errors).expanduser().resolve()
    path = Path(where).resolve()
    if errors not in path.parents:
        raise NoReport("the run's report is not in the errors location")
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the generator
    except FileNotFoundError:
        raise NoReport(f"the report {path.name} is no longer in the errors location") from None
    return _file_chunks(f)


def _file_chunks(f: Any) -> Iterator[bytes]:
    with f:
        while data := f.read(CHUNK):
            yield data


def _s3_chunks(config: Config, url: str) -> Iterator[bytes]:
    from ..aws.clients import client, error_code
    from ..files.s3 import parse_s3_url

    bucket, _, key = url.removeprefix("s3://").partition("/")  # an object, not a prefix
    ebucket, eprefix = parse_s3_url(config.errors)
    if bucket != ebucket or not key.startswith(eprefix) or ".." in key.split("/"):
        raise NoReport("the run's report is not in the errors location")
    try:
        body = client("s3", config).get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as e:
        if error_code(e) in ("NoSuchKey", "404", "NotFound"):
            raise NoReport("the report is no longer in the errors location") from e
        raise
    return iter(lambda: body.read(CHUNK), b"")


def first_rows(
    config: Config, where: str | None, limit: int = 100
) -> tuple[list[str], list[list[str]]]:
    """The report's header and its first ``limit`` rows ([], [] when there is none)."""
    try:
        stream = chunks(config, where)
    except NoReport:
        return [], []
    text = io.StringIO()
    size = 0
    for data in stream:  # enough bytes for ``limit`` rows, not the whole report
        text.write(data.decode("utf-8", "replace"))
        size += len(data)
        if text.getvalue().count("\n") > limit + 1 or size > 4 * CHUNK:
            break
    rows = list(csv.reader(io.StringIO(text.getvalue())))
    if not rows:
        return [], []
    return rows[0], rows[1 : limit + 1]
