"""AWS fixtures: a fresh set of buckets, tables, a topic and queues on the moto server per test.

Every resource name carries the test's unique suffix, so tests share one server safely.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from batchdrop.aws import clients
from batchdrop.config import Config, parse_config
from batchdrop.tables.dynamodb_ledger import ledger_table_spec

EVENTS = Path(__file__).resolve().parent / "events"
STUDENT_FIELDS = [
    {"name": "student_id", "type": "string", "constraints": {"pattern": "A[0-9]{5}"}},
    {"name": "fname", "type": "string", "constraints": {"required": True}},
    {"name": "lname", "type": "string"},
    {"name": "course", "type": "string"},
]
STUDENTS_CSV = (
    "student_id,fname,lname,course\n"
    "A10001,Ada,Lovelace,Analytical Engines\n"
    'A10002,Sherlock,Holmes,"Science Of Deduction"\n'
    'A10002,Sherlock,Holmes,"Modern Forensics"\n'
    'A10003,Émilie,du Châtelet,"Physics, Newtonian"\n'
)


def event_file(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def s3_event(
    bucket: str,
    key: str,
    *,
    size: int = 0,
    etag: str = "",
    version: str | None = None,
    name: str = "ObjectCreated:Put",
) -> dict[str, Any]:
    """The captured direct S3 event, pointed at ``bucket``/``key`` (encoded as S3 encodes it)."""
    event = event_file("s3_put.json")
    record = event["Records"][0]
    record["eventName"] = name
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    obj = record["s3"]["object"]
    obj.update(key=quote_plus(key, safe="/"), size=size, eTag=etag)
    if version:
        obj["versionId"] = version
    return event


def sqs_event(*bodies: Any) -> dict[str, Any]:
    """The captured SQS event shape, carrying ``bodies`` (one message each)."""
    template = event_file("sqs_s3.json")["Records"][0]
    return {
        "Records": [
            {
                **template,
                "messageId": f"msg-{i}",
                "body": b if isinstance(b, str) else json.dumps(b),
            }
            for i, b in enumerate(bodies)
        ]
    }


@dataclass
class Stack:
    """The AWS resources of one test and clients to look at them."""

    endpoint: str
    suffix: str
    s3: Any = None
    ddb: Any = None
    sns: Any = None
    sqs: Any = None
    inbound: str = ""
    archive: str = ""
    errors: str = ""
    table: str = ""
    ledger: str = ""
    topic_arn: str = ""
    receipts_queue: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def config(self, **overrides: Any) -> Config:
        data: dict[str, Any] = {
            "inbound": f"s3://{self.inbound}/incoming/",
            "archive": f"s3://{self.archive}/",
            "errors": f"s3://{self.errors}/rejected/",
            "table": {
                "url": f"dynamodb://{self.table}",
                "partition_key": "student_id",
                "sort_key": "course",
            },
            "ledger": f"dynamodb://{self.ledger}",
            "schema": {"fields": STUDENT_FIELDS},
            "notify": [f"sns://{self.topic_arn}"],
            "aws": {"endpoint_url": self.endpoint, "region": "us-east-1", "max_workers": 4},
        }
        data.update(overrides)
        return parse_config(data, source="test", environ={})

    def upload(self, key: str, body: bytes | str, bucket: str | None = None) -> dict[str, Any]:
        data = body.encode("utf-8") if isinstance(body, str) else body
        return self.s3.put_object(Bucket=bucket or self.inbound, Key=key, Body=data)  # type: ignore

    def keys(self, bucket: str) -> list[str]:
        reply = self.s3.list_objects_v2(Bucket=bucket)
        return sorted(o["Key"] for o in reply.get("Contents", []))

    def items(self) -> list[dict[str, Any]]:
        reply = self.ddb.scan(TableName=self.table, ConsistentRead=True)  # tests only
        return sorted(
            ({k: next(iter(v.values())) for k, v in i.items()} for i in reply["Items"]),
            key=lambda i: (i["student_id"], i["course"]),
        )

    def receipts(self, wait: int = 1) -> list[dict[str, Any]]:
        """The SNS messages delivered to the subscribed queue so far (and delete them)."""
        out: list[dict[str, Any]] = []
        while True:
            reply = self.sqs.receive_message(
                QueueUrl=self.receipts_queue,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait,
                MessageAttributeNames=["All"],
            )
            msgs = reply.get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.receipts_queue, ReceiptHandle=m["ReceiptHandle"]
                )
            wait = 0


def create_table(ddb: Any, name: str, key: tuple[str, ...] = ("student_id", "course")) -> None:
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in key],
        KeySchema=[
            {"AttributeName": k, "KeyType": t} for k, t in zip(key, ("HASH", "RANGE"), strict=False)
        ],
    )


@pytest.fixture
def stack(aws_env: str, unique: str) -> Iterator[Stack]:
    clients.clear_cache()
    st = Stack(endpoint=aws_env, suffix=unique)
    st.s3, st.ddb = clients.client("s3"), clients.client("dynamodb")
    st.sns, st.sqs = clients.client("sns"), clients.client("sqs")
    st.inbound, st.archive, st.errors = (f"in-{unique}", f"archive-{unique}", f"err-{unique}")
    for b in (st.inbound, st.archive, st.errors):
        st.s3.create_bucket(Bucket=b)
    st.table, st.ledger = f"students-{unique}", f"students-{unique}-ledger"
    create_table(st.ddb, st.table)
    st.ddb.create_table(**ledger_table_spec(st.ledger))
    st.topic_arn = st.sns.create_topic(Name=f"receipts-{unique}")["TopicArn"]
    st.receipts_queue = st.sqs.create_queue(QueueName=f"receipts-{unique}")["QueueUrl"]
    arn = st.sqs.get_queue_attributes(QueueUrl=st.receipts_queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    st.sns.subscribe(TopicArn=st.topic_arn, Protocol="sqs", Endpoint=arn)
    yield st
    clients.clear_cache()
