"""The BatchWriteItem wire path against the moto server: the items that arrive, the write units
summed, every failure classified as for a botocore call, the session's refreshable credentials
followed request by request, IAM refusals, the spread of sorted keys, and the fallback through
``client.batch_write_item`` for a client that is not botocore's."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import botocore.session
import pytest
from botocore.credentials import CredentialProvider, RefreshableCredentials

from batchdrop.errors import ConfigError, TransientError
from batchdrop.ports import Claim, FileRef
from batchdrop.report import Receipt
from batchdrop.tables.dynamodb import DynamoLoad, DynamoTable
from batchdrop.tables.dynamodb_wire import ClientSender, WireSender

from .conftest import Stack, create_table
from .fault_proxy import FaultProxy
from .iam import create_user

pytestmark = pytest.mark.aws
REF = FileRef(name="f.csv", size=1, version="v1", modified=0.0, url="s3://b/f.csv")
FIELDS = [
    {"name": "id", "type": "string"},
    {"name": "n", "type": "number"},
    {"name": "day", "type": "date"},
    {"name": "note", "type": "string"},
]


class NullLedger:
    def record(self, claim: Claim, state: str, receipt: Receipt) -> None:
        pass


@pytest.fixture
def proxy(moto_server: str) -> Iterator[FaultProxy]:
    made = FaultProxy(moto_server)
    yield made
    made.close()


def make_table(stack: Stack, endpoint: str, *, client: Any = None, **aws: Any) -> DynamoTable:
    name = f"wire-{stack.suffix}"
    create_table(stack.ddb, name, key=("id",))
    config = stack.config(
        schema={"fields": FIELDS},
        table={"url": f"dynamodb://{name}", "partition_key": "id"},
        aws={"endpoint_url": endpoint, "region": "us-east-1", **aws},
    )
    table = DynamoTable(config, client=client)
    table.backoff_base = table.backoff_cap = 0.001
    return table


def rows(n: int, start: int = 0) -> list[tuple[Any, ...]]:
    return [
        (f"k{i:05d}", Decimal(f"{i}.5E-3"), dt.date(2026, 1, 1 + i % 28), f'n"{i}\\ é')
        for i in range(start, start + n)
    ]


def load(table: DynamoTable, *batches: list[tuple[Any, ...]]) -> DynamoLoad:
    job = table.begin(Claim("new", "r", REF), NullLedger())  # type: ignore[arg-type]
    for batch in batches:
        job.write(batch, list(range(len(batch))))
    job.commit(Receipt(file="f.csv", source=REF.url, version="v1", size=1))
    return job


def stored(stack: Stack, table: DynamoTable) -> dict[str, dict[str, Any]]:
    reply = stack.ddb.scan(TableName=table.name, ConsistentRead=True)  # the test's own look
    return {item["id"]["S"]: item for item in reply["Items"]}


def test_items_arrive_exactly_and_units_are_summed(stack: Stack, proxy: FaultProxy) -> None:
    table = make_table(stack, proxy.url)
    job = load(table, rows(130))
    assert isinstance(job._sender, WireSender)
    items = stored(stack, table)
    assert len(items) == 130
    for row in rows(130):
        assert items[row[0]] == table.codec.item(row)
    assert job.requests == 6 and job.items_written == 130
    # moto answers ConsumedCapacity of 1.0 a request
    assert job.write_units == 6.0
    proxy.consumed = 12.5
    job = load(table, rows(60, 1000))
    assert job.requests == 3 and job.write_units == 37.5


def test_the_wire_is_taken_without_a_proxy(stack: Stack) -> None:
    table = make_table(stack, stack.endpoint)
    job = load(table, rows(30))
    assert isinstance(job._sender, WireSender) and job.write_units == 2.0
    assert len(stored(stack, table)) == 30


@pytest.mark.parametrize("fault", ["throttle", "error-500", "hang-up", "bad-crc", "unprocessed-3"])
def test_transient_faults_are_retried(stack: Stack, proxy: FaultProxy, fault: str) -> None:
    table = make_table(stack, proxy.url, max_workers=1)
    proxy.script = [fault, fault]
    job = load(table, rows(25))
    assert len(stored(stack, table)) == 25
    assert job.retries == 2 and job.requests == 3
    assert job.governor.cuts >= 1  # the table pushed back: fewer requests in flight


def test_throttled_for_ever_is_a_transient_error(stack: Stack, proxy: FaultProxy) -> None:
    table = make_table(stack, proxy.url, max_workers=1, max_retries=3)
    proxy.always = "throttle"
    with pytest.raises(
        TransientError,
        match=r"left 25 item\(s\) of wire-\w+ unwritten after 3 retries "
        r"\(ProvisionedThroughputExceededException\): the table is throttled",
    ):
        load(table, rows(25))
    assert len(proxy.batches) == 4


def test_an_item_error_is_a_transient_error(stack: Stack, proxy: FaultProxy) -> None:
    table = make_table(stack, proxy.url, max_workers=1)
    proxy.always = "validation"
    with pytest.raises(TransientError, match=r"refused a batch of 25 items .*ValidationException"):
        load(table, rows(25))
    assert len(proxy.batches) == 1  # not retried


def test_denied_is_a_config_error(stack: Stack, proxy: FaultProxy) -> None:
    table = make_table(stack, proxy.url)
    proxy.always = "denied"
    with pytest.raises(ConfigError, match=r"refused to write wire-\w+ \(AccessDeniedException\)"):
        load(table, rows(3))


def test_a_missing_table_is_a_config_error(stack: Stack) -> None:
    table = make_table(stack, stack.endpoint)
    stack.ddb.delete_table(TableName=table.name)
    with pytest.raises(
        ConfigError, match=r"refused to write wire-\w+ \(ResourceNotFoundException\)"
    ):
        load(table, rows(3))


def test_sorted_keys_are_spread_over_requests(stack: Stack, proxy: FaultProxy) -> None:
    fields = [{"name": "pk", "type": "string"}, {"name": "sk", "type": "string"}]
    name = f"spread-{stack.suffix}"
    create_table(stack.ddb, name, key=("pk", "sk"))
    config = stack.config(
        schema={"fields": fields},
        table={"url": f"dynamodb://{name}", "partition_key": "pk", "sort_key": "sk"},
        aws={"endpoint_url": proxy.url, "region": "us-east-1"},
    )
    sorted_rows = [
        (f"p{p:02d}", f"{s:03d}") for p in range(10) for s in range(100)
    ]  # 100 per partition
    job = load(DynamoTable(config), sorted_rows[:500], sorted_rows[500:])
    assert job.items_written == 1000 and len(proxy.batches) == 40
    most = max(
        max(sum(1 for i in batch if i["pk"]["S"] == p) for p in {i["pk"]["S"] for i in batch})
        for batch in proxy.batches
    )
    assert most <= 3  # not 25 items of one partition, as in file order


def test_the_later_row_wins_across_writes(stack: Stack, proxy: FaultProxy) -> None:
    table = make_table(stack, proxy.url)
    first = rows(30)
    later = [(r[0], Decimal(7), None, "later") for r in first[10:20]]
    job = load(table, first, later)
    for batch in proxy.batches:
        keys = [item["id"]["S"] for item in batch]
        assert len(keys) == len(set(keys))
    assert job.items_written == 30
    items = stored(stack, table)
    assert items["k00015"] == {"id": {"S": "k00015"}, "n": {"N": "7"}, "note": {"S": "later"}}
    assert items["k00005"]["note"] == {"S": 'n"5\\ é'}


class Recording:
    """A client that is not botocore's: the load falls back to its batch_write_item."""

    def __init__(self, real: Any):
        self.real = real
        self.calls: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def batch_write_item(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(kw)
        reply: dict[str, Any] = self.real.batch_write_item(**kw)
        return reply


def test_a_client_double_is_called_instead(stack: Stack) -> None:
    double = Recording(stack.ddb)
    table = make_table(stack, stack.endpoint, client=double)
    job = load(table, rows(40))
    assert isinstance(job._sender, ClientSender)
    assert sorted(len(c["RequestItems"][table.name]) for c in double.calls) == [15, 25]
    assert all(c["ReturnConsumedCapacity"] == "TOTAL" for c in double.calls)
    assert job.write_units == 2.0
    assert stored(stack, table)["k00003"] == table.codec.item(rows(4)[3])


# --- on the server that enforces IAM ---------------------------------------------------------


def _write_policy(arn: str, actions: list[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": arn}],
    }


@pytest.fixture
def iam_table(iam_moto_server: Any, stack: Stack) -> Iterator[tuple[Any, str, str]]:
    """(server, table name, ARN) of a table on the IAM-enforcing server."""
    ddb = iam_moto_server.client("dynamodb")
    name = f"iam-wire-{stack.suffix}"
    create_table(ddb, name, key=("id",))
    arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
    yield iam_moto_server, name, arn
    ddb.delete_table(TableName=name)


def _client_with(credentials: Any, endpoint: str) -> Any:
    class Given(CredentialProvider):
        METHOD = "given"

        def load(self) -> Any:
            return credentials

    session = botocore.session.Session()
    session.get_component("credential_provider").insert_before("env", Given())
    return session.create_client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")


def test_refreshed_credentials_sign_the_next_request(
    stack: Stack, iam_table: tuple[Any, str, str]
) -> None:
    server, name, arn = iam_table
    iam = server.client("iam")
    policy = _write_policy(arn, ["dynamodb:BatchWriteItem"])
    first = create_user(iam, f"wire-a-{stack.suffix}", policy)
    second = create_user(iam, f"wire-b-{stack.suffix}", policy)
    handed: list[str] = []

    def refresh() -> dict[str, Any]:
        # the first keys for the metadata and the first request, then the second keys; the
        # first are deleted then, so a request still signed with them is refused
        key, secret = first if len(handed) < 2 else second
        if len(handed) == 2:
            iam.delete_access_key(UserName=f"wire-a-{stack.suffix}", AccessKeyId=first[0])
        handed.append(key)
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)  # always due for a refresh
        return {
            "access_key": key,
            "secret_key": secret,
            "token": None,
            "expiry_time": soon.isoformat(),
        }

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    proxy = FaultProxy(server.url)
    try:
        config = stack.config(
            schema={"fields": FIELDS},
            table={"url": f"dynamodb://{name}", "partition_key": "id"},
            aws={"endpoint_url": proxy.url, "region": "us-east-1", "max_workers": 1},
        )
        table = DynamoTable(config, client=_client_with(credentials, proxy.url))
        job = load(table, rows(75))
    finally:
        proxy.close()
    assert job.items_written == 75
    assert proxy.signers == [first[0], second[0], second[0]]
    reply = server.client("dynamodb").scan(TableName=name, Select="COUNT")
    assert reply["Count"] == 75


def test_access_denied_is_a_config_error(stack: Stack, iam_table: tuple[Any, str, str]) -> None:
    server, name, arn = iam_table
    key, secret = create_user(
        server.client("iam"), f"wire-ro-{stack.suffix}", _write_policy(arn, ["dynamodb:GetItem"])
    )
    session = botocore.session.Session()
    session.set_credentials(key, secret)
    client = session.create_client("dynamodb", endpoint_url=server.url, region_name="us-east-1")
    config = stack.config(
        schema={"fields": FIELDS},
        table={"url": f"dynamodb://{name}", "partition_key": "id"},
        aws={"endpoint_url": server.url, "region": "us-east-1"},
    )
    table = DynamoTable(config, client=client)
    with pytest.raises(
        ConfigError, match=r"refused to write iam-wire-\w+ \((AccessDeniedException|403)\)"
    ):
        load(table, rows(3))
    assert json.loads(json.dumps(table.codec.item(rows(1)[0])))  # the items were well formed


def test_without_credentials_the_client_says_so(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    bare = botocore.session.Session().create_client(
        "dynamodb", endpoint_url=stack.endpoint, region_name="us-east-1"
    )
    table = make_table(stack, stack.endpoint, client=bare)
    with pytest.raises(TransientError, match="Unable to locate credentials"):
        load(table, rows(3))
