"""A three-column key on AWS: an S3 event loads the file into a table made from the
template's key schema, and the items are found again by their columns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from batchdrop.aws.handler import Runtime
from batchdrop.config import Config
from batchdrop.deploy.template import key_attributes
from batchdrop.errors import ConfigError
from batchdrop.tables.dynamodb import DynamoTable

from .conftest import Stack, s3_event

FIELDS = [
    {"name": "carrier", "type": "string"},
    {"name": "time_hour", "type": "datetime"},
    {"name": "flight", "type": "integer"},
    {"name": "dest", "type": "string"},
]
CSV = (
    "carrier,time_hour,flight,dest\n"
    "UA,2013-01-01T10:00:00Z,1545,IAH\n"
    "UA,2013-01-01T10:00:00Z,1696,ORD\n"
    "UA,2013-01-01T11:00:00Z,1545,IAH\n"
    "AA,2013-01-01T10:00:00Z,1141,MIA\n"
)


def make_table(stack: Stack, config: Config, name: str) -> None:
    key = key_attributes(config)
    stack.ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t, _ in key],
        KeySchema=[{"AttributeName": n, "KeyType": k} for n, _, k in key],
    )


def flights_config(stack: Stack, table: str) -> Config:
    return stack.config(
        table={
            "url": f"dynamodb://{table}",
            "partition_key": "carrier",
            "sort_key": ["time_hour", "flight"],
        },
        schema={"fields": FIELDS, "primaryKey": ["carrier", "time_hour", "flight"]},
    )


def test_an_s3_event_loads_a_three_column_key(stack: Stack) -> None:
    table = f"flights-{stack.suffix}"
    config = flights_config(stack, table)
    make_table(stack, config, table)
    put = stack.upload("incoming/flights.csv", CSV)
    event = s3_event(
        stack.inbound, "incoming/flights.csv", size=len(CSV), etag=put["ETag"].strip('"')
    )
    reply = Runtime(config).handle(event, lambda: 600.0)
    assert [r["status"] for r in reply["results"]] == ["loaded"]

    raw = stack.ddb.get_item(
        TableName=table,
        Key={"carrier": {"S": "UA"}, "time_hour#flight": {"S": "2013-01-01T10:00:00+00:00#1696"}},
    )["Item"]
    assert raw["flight"] == {"N": "1696"} and raw["dest"] == {"S": "ORD"}
    dynamo = DynamoTable(config)
    hour = datetime(2013, 1, 1, 10, tzinfo=UTC)
    assert dynamo.get(("UA", hour, 1545))["dest"] == "IAH"  # type: ignore[index]
    page = dynamo.query("UA", begins_with="2013-01-01T10:00:00+00:00#")
    assert [i["flight"] for i in page.items] == [1545, 1696]
    assert [i["flight"] for i in dynamo.query("UA").items] == [1545, 1696, 1545]


def test_a_table_with_another_key_is_named_in_the_error(stack: Stack) -> None:
    # the stack's own table is keyed student_id + course: not this config's key
    config = flights_config(stack, stack.table)
    with pytest.raises(ConfigError) as e:
        DynamoTable(config).prepare()
    assert (
        "has the key ['student_id', 'course'], the config says ['carrier', 'time_hour#flight']"
        in (str(e.value))
    )
