"""Which reports the page opens: only a ``*.rejected.csv`` inside the errors location, whatever
a ledger record names."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchdrop.config import parse_config
from batchdrop.web.reports import NoReport, chunks, first_rows


def config(tmp_path: Path) -> object:
    return parse_config(
        {
            "inbound": str(tmp_path / "in"),
            "archive": str(tmp_path / "archive"),
            "errors": str(tmp_path / "errors"),
            "table": {"url": f"sqlite:///{tmp_path / 't.db'}", "partition_key": "id"},
            "schema": {"fields": [{"name": "id"}]},
        },
        environ={},
    )


def test_only_reports_inside_the_errors_location_are_read(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    (tmp_path / "errors").mkdir()
    inside = tmp_path / "errors" / "a.rejected.csv"
    inside.write_text("file,line\na.csv,2\n")
    outside = tmp_path / "secret.rejected.csv"
    outside.write_text("not yours\n")
    assert b"".join(chunks(cfg, str(inside))) == inside.read_bytes()  # type: ignore[arg-type]
    assert first_rows(cfg, str(inside)) == (["file", "line"], [["a.csv", "2"]])  # type: ignore[arg-type]
    for where in (
        str(outside),
        str(tmp_path / "errors" / ".." / "secret.rejected.csv"),
        str(tmp_path / "errors" / "a.csv"),
        None,
    ):
        with pytest.raises(NoReport):
            chunks(cfg, where)  # type: ignore[arg-type]
