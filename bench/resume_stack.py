"""The resume bench's stack on a moto server (bench/resume.py): buckets, the table, the ledger,
the receipts topic and the events queue S3 notifies, wired as the deployed stack is; and the
checks every contender must pass afterwards."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynamo_measure import count_items, students_table

NAME = "students.csv"
PREFIX = "incoming/"
BUCKETS = {"inbound": "bench-in", "archive": "bench-archive", "errors": "bench-errors"}
TABLE, LEDGER = "students", "students-ledger"


def settings(endpoint: str, topic: str, **extra: Any) -> dict[str, Any]:
    string = {"type": "string"}
    required = {"type": "string", "constraints": {"required": True}}
    return {
        "inbound": f"s3://{BUCKETS['inbound']}/{PREFIX}",
        "archive": f"s3://{BUCKETS['archive']}/",
        "errors": f"s3://{BUCKETS['errors']}/",
        "table": {
            "url": f"dynamodb://{TABLE}",
            "partition_key": "student_id",
            "sort_key": "course",
        },
        "ledger": f"dynamodb://{LEDGER}",
        "schema": {
            "fields": [
                {"name": "student_id", **required},
                {"name": "fname", **string},
                {"name": "lname", **string},
                {"name": "course", **required},
            ]
        },
        "notify": [f"sns://{topic}"],
        **extra,
        "aws": {"endpoint_url": endpoint, **extra.get("aws", {})},
    }


def parse(data: dict[str, Any]) -> Any:
    from batchdrop.config import parse_config

    return parse_config(data, source="bench", environ={})


@dataclass
class Stack:
    """The resources of one contender on its own moto server, and clients to look at them."""

    endpoint: str
    s3: Any
    ddb: Any
    sqs: Any
    topic: str = ""
    receipts: str = ""  # the queue subscribed to the topic
    events: str = ""  # the queue S3 notifies of created inbound objects
    events_arn: str = ""

    def arn(self, url: str) -> str:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attrs["Attributes"]["QueueArn"])


def make_stack(endpoint: str) -> Stack:
    """Buckets, the table, the ledger, the receipts topic with a queue subscribed, and the
    events queue that S3 notifies (as the deployed stack is wired)."""
    import boto3

    from batchdrop.aws import clients
    from batchdrop.tables.dynamodb_ledger import ledger_table_spec

    clients.clear_cache()
    st = Stack(endpoint, boto3.client("s3"), boto3.client("dynamodb"), boto3.client("sqs"))
    for bucket in BUCKETS.values():
        st.s3.create_bucket(Bucket=bucket)
    students_table(st.ddb, TABLE)
    st.ddb.create_table(**ledger_table_spec(LEDGER))
    sns = boto3.client("sns")
    st.topic = sns.create_topic(Name="receipts")["TopicArn"]
    st.receipts = st.sqs.create_queue(QueueName="receipts")["QueueUrl"]
    sns.subscribe(TopicArn=st.topic, Protocol="sqs", Endpoint=st.arn(st.receipts))
    st.events = st.sqs.create_queue(QueueName="events", Attributes={"VisibilityTimeout": "900"})[
        "QueueUrl"
    ]
    st.events_arn = st.arn(st.events)
    prefix = {"Key": {"FilterRules": [{"Name": "prefix", "Value": PREFIX}]}}
    st.s3.put_bucket_notification_configuration(
        Bucket=BUCKETS["inbound"],
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": st.events_arn, "Events": ["s3:ObjectCreated:*"], "Filter": prefix}
            ]
        },
    )
    st.sqs.purge_queue(QueueUrl=st.events)  # the s3:TestEvent the configuration sent
    return st


def upload(st: Stack, path: Path) -> None:
    """One PUT, as a client uploads a file this size (moto notifies a multipart upload twice)."""
    st.s3.put_object(Bucket=BUCKETS["inbound"], Key=PREFIX + NAME, Body=path.read_bytes())


def missing(st: Stack, path: Path, show: int = 5) -> str:
    """The file's rows whose item is not in the table: how many, and the first few."""
    import csv

    def rows() -> Any:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            next(reader)
            for line, row in enumerate(reader, start=2):
                yield line, row[0], row[3]

    from batchdrop.ports import iter_chunks

    lost: list[str] = []
    count = 0
    for batch in iter_chunks(rows(), 100):
        keys = [{"student_id": {"S": sid}, "course": {"S": c}} for _, sid, c in batch]
        reply = st.ddb.batch_get_item(RequestItems={TABLE: {"Keys": keys}})
        found = {(i["student_id"]["S"], i["course"]["S"]) for i in reply["Responses"][TABLE]}
        for n, sid, c in batch:
            if (sid, c) not in found:
                count += 1
                if len(lost) < show:
                    lost.append(f"line {n} ({sid}, {c})")
    return f"{count:,} rows missing: {'; '.join(lost)}"


def verify(st: Stack, rows: int, path: Path) -> tuple[bool, str]:
    """Items == rows, exactly one receipt (loaded, every row), the file archived and out of
    inbound, and no state object left."""
    import yaml

    items = count_items(st.ddb, TABLE)
    receipts = []
    while True:
        msgs = st.sqs.receive_message(
            QueueUrl=st.receipts, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            receipts.append(yaml.safe_load(json.loads(m["Body"])["Message"])["receipt"])
            st.sqs.delete_message(QueueUrl=st.receipts, ReceiptHandle=m["ReceiptHandle"])

    def keys(bucket: str) -> list[str]:
        reply = st.s3.list_objects_v2(Bucket=bucket)
        return [o["Key"] for o in reply.get("Contents", [])]

    archived = keys(BUCKETS["archive"]) == [NAME]
    inbound = keys(BUCKETS["inbound"])
    state = [k for k in keys(BUCKETS["errors"]) if "_batchdrop/state/" in k]
    loaded = [(r.get("status"), r.get("rows_read"), r.get("rows_loaded")) for r in receipts]
    ok = (
        items == rows
        and loaded == [("loaded", rows, rows)]
        and archived
        and not inbound
        and not state
    )
    text = (
        f"{items:,} in table, {len(receipts)} receipt"
        + ("" if len(receipts) == 1 else "s")
        + (f" {loaded[0][0]}" if len(loaded) == 1 else "")
        + (", archived" if archived else ", NOT archived")
        + (f", {len(inbound)} left in inbound" if inbound else "")
        + (f", {len(state)} state objects left" if state else "")
        + (f"; {missing(st, path)}" if items < rows else "")
    )
    return ok, ("OK " if ok else "FAILED ") + text
