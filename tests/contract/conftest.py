"""One behaviour suite, run over every adapter pair: a local folder + SQLite, and S3 + DynamoDB
on the moto server. A test here says what batchdrop does, never which adapter does it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchdrop.config import Config, parse_config
from batchdrop.pipeline import Pipeline
from batchdrop.report import Receipt

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
LOCATIONS = ("inbound", "archive", "errors")


class Recorder:
    """A notifier that keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[Receipt] = []

    def send(self, receipt: Receipt) -> None:
        self.sent.append(receipt)


class Env:
    kind = ""

    def __init__(self) -> None:
        self.notes = Recorder()

    def settings(self, **overrides: Any) -> dict[str, Any]:
        raise NotImplementedError

    def config(self, base: dict[str, Any] | None = None, **overrides: Any) -> Config:
        data = dict(base or self.corpus_base())
        data.update(self.settings())
        data.update(overrides)
        data["notify"] = []
        return parse_config(data, source="test", environ={})

    @staticmethod
    def corpus_base() -> dict[str, Any]:
        data = yaml.safe_load((CORPUS / "corpus.yaml").read_text())
        return {k: v for k, v in data.items() if k not in LOCATIONS}

    def pipeline(self, config: Config | None = None) -> Pipeline:
        return Pipeline(config or self.config(), notifiers=[self.notes])

    # what each adapter pair provides
    def drop(self, name: str, data: bytes) -> None: ...
    def names(self, location: str) -> list[str]: ...
    def read(self, location: str, name: str) -> bytes: ...
    def items(self) -> list[dict[str, Any]]: ...

    def where(self, name: str) -> list[str]:
        return [loc for loc in LOCATIONS if name in self.names(loc)]


class LocalEnv(Env):
    kind = "local"

    def __init__(self, root: Path):
        super().__init__()
        self.root = root
        for loc in LOCATIONS:
            (root / loc).mkdir()

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {loc: str(self.root / loc) for loc in LOCATIONS} | {
            "table": {
                "url": f"sqlite:///{self.root}/db.sqlite",
                "name": "students",
                "partition_key": "student_id",
                "sort_key": "course",
            }
        }

    def drop(self, name: str, data: bytes) -> None:
        p = self.root / "inbound" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def names(self, location: str) -> list[str]:
        base = self.root / location
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())

    def read(self, location: str, name: str) -> bytes:
        return (self.root / location / name).read_bytes()

    def items(self) -> list[dict[str, Any]]:
        import sqlite3

        db = self.root / "db.sqlite"
        if not db.exists():
            return []
        conn = sqlite3.connect(db)
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute("SELECT * FROM students ORDER BY student_id, course").fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            pass
        out = [
            {k: None if r[k] is None else str(r[k]) for k in r.keys() if k[0] != "_"}  # noqa: SIM118
            for r in rows
        ]
        conn.close()
        return out


class AwsEnv(Env):
    kind = "aws"

    def __init__(self, endpoint: str, suffix: str):
        super().__init__()
        from batchdrop.aws import clients
        from batchdrop.tables.dynamodb_ledger import ledger_table_spec

        clients.clear_cache()
        self.endpoint = endpoint
        self.s3 = clients.client("s3")
        self.ddb = clients.client("dynamodb")
        self.buckets = {loc: f"{loc[:3]}-{suffix}" for loc in LOCATIONS}
        for b in self.buckets.values():
            self.s3.create_bucket(Bucket=b)
        self.table = f"students-{suffix}"
        self.ledger = f"ledger-{suffix}"
        self.ddb.create_table(
            TableName=self.table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": k, "AttributeType": "S"} for k in ("student_id", "course")
            ],
            KeySchema=[
                {"AttributeName": "student_id", "KeyType": "HASH"},
                {"AttributeName": "course", "KeyType": "RANGE"},
            ],
        )
        self.ddb.create_table(**ledger_table_spec(self.ledger))

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {loc: f"s3://{b}/drop/" for loc, b in self.buckets.items()} | {
            "table": {
                "url": f"dynamodb://{self.table}",
                "partition_key": "student_id",
                "sort_key": "course",
            },
            "ledger": f"dynamodb://{self.ledger}",
            "aws": {"endpoint_url": self.endpoint, "region": "us-east-1"},
        }

    def drop(self, name: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.buckets["inbound"], Key="drop/" + name, Body=data)

    def names(self, location: str) -> list[str]:
        reply = self.s3.list_objects_v2(Bucket=self.buckets[location], Prefix="drop/")
        return sorted(o["Key"].removeprefix("drop/") for o in reply.get("Contents", []))

    def read(self, location: str, name: str) -> bytes:
        obj = self.s3.get_object(Bucket=self.buckets[location], Key="drop/" + name)
        return obj["Body"].read()  # type: ignore[no-any-return]

    def items(self) -> list[dict[str, Any]]:
        reply = self.ddb.scan(TableName=self.table, ConsistentRead=True)  # tests only
        out = []
        for item in reply["Items"]:
            row = {
                k: str(next(iter(v.values())))
                for k, v in item.items()
                if not k.startswith("_batchdrop")
            }
            out.append(row)
        return sorted(out, key=lambda r: (r["student_id"], r["course"]))


@pytest.fixture(params=["local", "local-writer", "aws"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    if request.param.startswith("local"):
        if request.param == "local-writer":  # every file through the SQLite writer process
            from batchdrop.tables import sqlite_load

            monkeypatch.setattr(sqlite_load, "WRITER_MIN_BYTES", 0)
        yield LocalEnv(tmp_path)
        return
    endpoint = request.getfixturevalue("aws_env")
    suffix = request.getfixturevalue("unique")
    yield AwsEnv(endpoint, suffix)
    from batchdrop.aws import clients

    clients.clear_cache()
