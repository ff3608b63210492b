"""The query API's fixtures: the same data loaded into SQLite and into DynamoDB (moto server).

Data goes in through the real engine (``Pipeline.process``) when it is there, else straight
through ``Table.begin`` / ``Load.write`` / ``Load.commit`` and the ledger.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchdrop.adapters import Backends
from batchdrop.config import Config, parse_config

BACKENDS = ["sqlite", "dynamodb"]

STUDENT_FIELDS = [
    {"name": "student_id", "type": "string"},
    {"name": "fname", "type": "string"},
    {"name": "lname", "type": "string"},
    {"name": "course", "type": "string"},
    {"name": "credits", "type": "number"},
    {"name": "enrolled", "type": "date"},
]
HEADER = ["student_id", "fname", "lname", "course", "credits", "enrolled"]
# A partition and a sort key holding what URLs make hard: spaces, '/', '+', '%', unicode.
ODD_PARTITION = "A 1/2+é%"
ODD_SORT = "Forensics/Advanced + ü %2F"
EXACT = "1234567890123456789.123456789"  # 28 digits: a float would lose 11 of them
BIG_PARTITION = "B20000"
BIG_COURSES = [f"Course {i:02d}" for i in range(7)]

GOOD = [
    ["A10002", "Sherlock", "Holmes", "Science Of Deduction", "7.5", "2026-09-01"],
    ["A10002", "Sherlock", "Holmes", "Modern Forensics", EXACT, "2026-09-02"],
    ["A10002", "Sherlock", "Holmes", "Chemistry", "", ""],
    ["A10003", "John", "Watson", "Medicine", "10", "2026-09-01"],
    [ODD_PARTITION, "Irene", "Adler", ODD_SORT, "1", "2026-10-01"],
    [ODD_PARTITION, "Irene", "Adler", "Opera", "2", "2026-10-02"],
    *[[BIG_PARTITION, "Mycroft", "Holmes", c, "3", "2026-11-01"] for c in reversed(BIG_COURSES)],
]
SOME_BAD = [
    ["C30000", "Mrs", "Hudson", "Housekeeping", "not-a-number", "2026-09-01"],
    ["C30000", "Mrs", "Hudson", "Baking", "4", "2026-09-01"],
]

ITEM_FIELDS = [
    {"name": "id", "type": "integer"},
    {"name": "label", "type": "string"},
    {"name": "price", "type": "number"},
]
ITEM_ROWS = [["42", "answer", "0.10"], ["7", "seven", "700"]]

# Tables whose sort key is not a string: the partition "S1" holds these sort-key values.
SORTED_BY = {
    "integer": ["-5", "0", "3", "7", "12", "900", "123456789012"],
    "number": ["-1.5", "0", "0.25", "3", "7.50", "1E+3", "123456789.000001"],
    "date": [f"2026-0{m}-1{m}" for m in range(1, 8)],
    "datetime": [f"2026-01-0{d}T0{d}:30:00" for d in range(1, 8)],
}


@dataclass
class Dataset:
    config: Config
    run_ids: dict[str, str]  # file name → run id


def make_config(
    kind: str, root: Path, fields: list[dict[str, Any]], key: tuple[str, ...], table: str
) -> Config:
    url = f"sqlite:///{root / 'batchdrop.db'}" if kind == "sqlite" else f"dynamodb://{table}"
    data: dict[str, Any] = {
        "inbound": str(root / "inbound"),
        "archive": str(root / "archive"),
        "errors": str(root / "errors"),
        "table": {
            "url": url,
            "partition_key": key[0],
            **({"sort_key": key[1]} if len(key) > 1 else {}),
        },
        "schema": {"fields": fields},
        "on_error": "skip_rows",
        "notify": [],
    }
    for d in ("inbound", "archive", "errors"):
        (root / d).mkdir(parents=True, exist_ok=True)
    return parse_config(data, environ={})


def create_dynamo_tables(config: Config) -> None:
    from batchdrop.aws.clients import client
    from batchdrop.deploy.template import key_attributes
    from batchdrop.tables.dynamodb_ledger import ledger_table_spec

    ddb = client("dynamodb", config)
    key = key_attributes(config)  # the key the deployed stack's table has
    ddb.create_table(
        TableName=config.table.table_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t, _ in key],
        KeySchema=[{"AttributeName": n, "KeyType": k} for n, _, k in key],
    )
    ddb.create_table(**ledger_table_spec(config.ledger_url.removeprefix("dynamodb://")))


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def load(config: Config, files: dict[str, str]) -> dict[str, str]:
    """Process each file through the engine; returns file name → run id."""
    from batchdrop.pipeline import Pipeline

    backends = Backends(config)
    pipeline = Pipeline(config, backends=backends, notifiers=[])
    out = {}
    for name, text in files.items():
        (Path(config.inbound) / name).write_text(text, encoding="utf-8")
        receipt = pipeline.process(name)
        out[name] = receipt.run_id
    backends.close()
    return out


_cache: dict[tuple[str, str], Dataset] = {}


def dataset(kind: str, which: str, root: Path, unique: str) -> Dataset:
    """Load a data set once per backend and test session (moto keeps it for the session)."""
    if (kind, which) in _cache:
        return _cache[(kind, which)]
    if which == "students":
        config = make_config(
            kind, root, STUDENT_FIELDS, ("student_id", "course"), f"students-{unique}"
        )
        files = {
            "students.csv": csv_text(HEADER, GOOD),
            "some-bad.csv": csv_text(HEADER, SOME_BAD),
            "bad-header.csv": "who,what\n1,2\n",
        }
    elif which in SORTED_BY:
        fields = [{"name": "sensor", "type": "string"}, {"name": "at", "type": which}]
        config = make_config(kind, root, fields, ("sensor", "at"), f"{which}-{unique}")
        rows = [["S1", v] for v in SORTED_BY[which]]
        files = {"readings.csv": csv_text(["sensor", "at"], rows)}
    else:
        config = make_config(kind, root, ITEM_FIELDS, ("id",), f"items-{unique}")
        files = {"items.csv": csv_text(["id", "label", "price"], ITEM_ROWS)}
    if kind == "dynamodb":
        create_dynamo_tables(config)
    ds = Dataset(config, load(config, files))
    _cache[(kind, which)] = ds
    return ds


class Api:
    """A synchronous httpx client speaking to the ASGI app in-process."""

    def __init__(self, app: Any):
        self.app = app

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
                return await c.get(url, **kwargs)

        return asyncio.run(go())


def exact(response: httpx.Response) -> Any:
    """The JSON body with numbers read as Decimal, so a float's rounding would show."""
    return response.json(parse_float=Decimal, parse_int=Decimal)


def _backend_env(request: pytest.FixtureRequest, kind: str) -> str:
    if kind == "dynamodb":
        request.getfixturevalue("aws_env")
        return "dynamodb"
    return "sqlite"


@pytest.fixture(params=BACKENDS)
def students(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, unique: str
) -> Iterator[tuple[Dataset, Api]]:
    from batchdrop.api.app import create_app

    kind = _backend_env(request, request.param)
    ds = dataset(kind, "students", tmp_path_factory.mktemp(f"{kind}-students"), unique)
    yield ds, Api(create_app(ds.config))


@pytest.fixture(params=BACKENDS)
def keyed_items(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, unique: str
) -> Iterator[tuple[Dataset, Api]]:
    """A table with an integer partition key and no sort key."""
    from batchdrop.api.app import create_app

    kind = _backend_env(request, request.param)
    ds = dataset(kind, "items", tmp_path_factory.mktemp(f"{kind}-items"), unique)
    yield ds, Api(create_app(ds.config))


def _sorted_by(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, unique: str
) -> tuple[str, Dataset, Api]:
    from batchdrop.api.app import create_app

    backend, sort_type = request.param
    kind = _backend_env(request, backend)
    ds = dataset(kind, sort_type, tmp_path_factory.mktemp(f"{kind}-{sort_type}"), unique)
    return sort_type, ds, Api(create_app(ds.config))


@pytest.fixture(params=[(k, t) for k in BACKENDS for t in SORTED_BY], ids="-".join)
def sorted_by(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, unique: str
) -> tuple[str, Dataset, Api]:
    """A table keyed by ("sensor", "at"), where "at" is an integer, number, date or datetime;
    gives the sort key's type, the data set and a client."""
    return _sorted_by(request, tmp_path_factory, unique)


@pytest.fixture(params=[(k, t) for k in BACKENDS for t in ("integer", "number")], ids="-".join)
def sorted_by_number(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, unique: str
) -> tuple[str, Dataset, Api]:
    """The same, for the integer and number sort keys only."""
    return _sorted_by(request, tmp_path_factory, unique)
