"""Date and datetime keys as people type them: in the file's own format or in ISO 8601 (what
`get` and the API print), and `begins_with` over their ISO 8601 text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchdrop.config import Config, parse_config
from batchdrop.schema import parse_value

from .conftest import BACKENDS, Api, _backend_env, create_dynamo_tables, csv_text, load

FIELDS = [
    {"name": "sensor", "type": "string"},
    {"name": "day", "type": "date", "format": "%d/%m/%Y"},
    {"name": "at", "type": "datetime"},
    {"name": "reading", "type": "integer"},
]
HEADER = [f["name"] for f in FIELDS]
ROWS = [
    ["S1", "30/12/2025", "2025-12-30 23:00", "1"],
    ["S1", "05/01/2026", "2026-01-05 08:30", "2"],
    ["S1", "06/01/2026", "2026-01-06T08:45:00", "3"],
    ["S1", "01/02/2026", "2026-02-01 00:00:00", "4"],
]


def typed_config(kind: str, root: Path, table: str, sort_key: str) -> Config:
    url = f"sqlite:///{root / 'batchdrop.db'}" if kind == "sqlite" else f"dynamodb://{table}"
    for d in ("inbound", "archive", "errors"):
        (root / d).mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "inbound": str(root / "inbound"),
        "archive": str(root / "archive"),
        "errors": str(root / "errors"),
        "table": {"url": url, "partition_key": "sensor", "sort_key": sort_key},
        "schema": {"fields": FIELDS},
        "notify": [],
    }
    return parse_config(data, environ={})


def _api(request: pytest.FixtureRequest, tmp_path: Path, unique: str, sort_key: str) -> Api:
    from batchdrop.api.app import create_app

    kind = _backend_env(request, request.param)
    config = typed_config(kind, tmp_path, f"{sort_key}-{unique}", sort_key)
    if kind == "dynamodb":
        create_dynamo_tables(config)
    load(config, {"readings.csv": csv_text(HEADER, ROWS)})
    return Api(create_app(config))


@pytest.fixture(params=BACKENDS)
def by_day(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[Api]:
    yield _api(request, tmp_path, unique, "day")


@pytest.fixture(params=BACKENDS)
def by_time(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[Api]:
    yield _api(request, tmp_path, unique, "at")


def test_a_date_key_is_found_in_its_format_and_in_iso(by_day: Api) -> None:
    as_written = by_day.get("/items/S1/05/01/2026")
    assert as_written.status_code == 200, as_written.text
    assert as_written.json()["day"] == "2026-01-05"
    iso = by_day.get("/items/S1/2026-01-05")
    assert iso.status_code == 200 and iso.json() == as_written.json()
    bad = by_day.get("/items/S1/2026-13-05")
    assert bad.status_code == 400
    assert "not a date in the format %d/%m/%Y" in bad.json()["detail"]


def test_begins_with_reads_the_iso_text_of_a_date(by_day: Api) -> None:
    january = by_day.get("/items/S1", params={"begins_with": "2026-01"}).json()
    assert [i["reading"] for i in january["items"]] == [2, 3]
    # pages continue after a date of its own format (the position is its ISO text)
    first = by_day.get("/items/S1", params={"limit": 1}).json()
    rest = by_day.get("/items/S1", params={"limit": 9, "cursor": first["next_cursor"]})
    assert rest.status_code == 200, rest.text
    assert [i["day"] for i in rest.json()["items"]] == ["2026-01-05", "2026-01-06", "2026-02-01"]


def test_a_naive_datetime_is_the_same_key_written_and_looked_up(by_time: Api) -> None:
    for typed in ("2026-01-05 08:30", "2026-01-05T08:30:00", "2026-01-05T08:30"):
        r = by_time.get("/items/S1/" + typed)
        assert r.status_code == 200, (typed, r.text)
        assert r.json()["at"] == "2026-01-05T08:30:00"
    hour = by_time.get("/items/S1", params={"begins_with": "2026-01-0"}).json()
    assert [i["reading"] for i in hour["items"]] == [2, 3]


def test_parse_value_takes_iso_for_a_formatted_date(tmp_path: Path) -> None:
    config = typed_config("sqlite", tmp_path, "t", "day")
    day = config.schema_.field("day")
    assert parse_value(day, "05/01/2026") == parse_value(day, "2026-01-05")
    with pytest.raises(ValueError, match="day: not a date in the format %d/%m/%Y"):
        parse_value(day, "5 Jan 2026")


#: integer sort keys past 64 bits, which SQLite keeps as their exact text and DynamoDB as a
#: number of up to 38 digits, beside ordinary ones
HUGE = [str(2**70), str(-(2**70)), "5", "-3", str(2**63), str(-(2**63) - 1)]


@pytest.fixture(params=BACKENDS)
def by_reading(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[Api]:
    from batchdrop.api.app import create_app

    kind = _backend_env(request, request.param)
    config = typed_config(kind, tmp_path, f"reading-{unique}", "reading")
    if kind == "dynamodb":
        create_dynamo_tables(config)
    rows = [["S1", "01/01/2026", "2026-01-01 00:00", r] for r in HUGE]
    load(config, {"huge.csv": csv_text(HEADER, rows)})
    yield Api(create_app(config))


def test_an_integer_key_past_64_bits_is_found_and_paged_through(by_reading: Api) -> None:
    for reading in HUGE:
        r = by_reading.get(f"/items/S1/{reading}")
        assert r.status_code == 200, (reading, r.text)
        assert str(r.json()["reading"]) == reading
    seen, cursor = [], None
    for _ in range(len(HUGE) + 1):
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = by_reading.get("/items/S1", params=params)
        assert page.status_code == 200, page.text
        seen += [str(item["reading"]) for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(HUGE)  # each once, across six pages
