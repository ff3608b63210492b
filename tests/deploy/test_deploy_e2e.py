"""End to end on moto: deploy the students example, drop its CSV into the inbound bucket, run
the worker on the stack's queue, and find the rows, the archived file and the receipt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from batchdrop.config import load_config
from batchdrop.deploy.package import build_package
from batchdrop.deploy.settings import deploy_settings
from batchdrop.deploy.stack import StackClient
from batchdrop.deploy.template import build_template

pytest.importorskip("batchdrop.pipeline")
pytest.importorskip("batchdrop.aws.worker")

pytestmark = pytest.mark.aws
ROOT = Path(__file__).resolve().parents[2]
NO_NOTIFICATION = (
    "the inbound bucket had no notification (an emulator ignores it in a stack): applied"
)
EXAMPLE = ROOT / "examples" / "students"


def resolve_notification(template: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """The template's inbound notification with the queue's ARN filled in, in the S3 API's
    shape (the template tests check its content)."""
    note = template["Resources"]["InboundBucket"]["Properties"]["NotificationConfiguration"]
    return {
        "QueueConfigurations": [
            {
                "QueueArn": queue_arn,
                "Events": [c["Event"]],
                "Filter": {"Key": {"FilterRules": c["Filter"]["S3Key"]["Rules"]}},
            }
            for c in note["QueueConfigurations"]
        ]
    }


def bucket_notification(s3: Any, bucket: str) -> dict[str, Any]:
    """The bucket's notification configuration as it was put (S3 adds ids and spells the
    filter names with a capital)."""
    reply = s3.get_bucket_notification_configuration(Bucket=bucket)
    return {
        key: [
            {
                **{k: v for k, v in c.items() if k != "Id"},
                "Filter": {
                    "Key": {
                        "FilterRules": [
                            {"Name": r["Name"].lower(), "Value": r["Value"]}
                            for r in c["Filter"]["Key"]["FilterRules"]
                        ]
                    }
                },
            }
            for c in reply[key]
        ]
        for key in ("QueueConfigurations", "LambdaFunctionConfigurations", "TopicConfigurations")
        if reply.get(key)
    }


def test_deploy_upload_worker_rows_archive_receipt(
    aws_env: str, tmp_path: Path, unique: str
) -> None:
    from batchdrop.aws.handler import Runtime
    from batchdrop.aws.worker import Worker

    config = load_config(EXAMPLE / "batchdrop.yaml", environ={})
    settings = deploy_settings(config)
    stack = f"e2e-{unique}"
    package = build_package(config, settings, tmp_path / "lambda.zip", with_dependencies=False)
    lines: list[str] = []
    sc = StackClient(config, poll=0.01, echo=lines.append)
    out = sc.deploy(config, settings, stack, package).outputs

    # moto's CloudFormation leaves the bucket's NotificationConfiguration out: deploy applies it
    assert NO_NOTIFICATION in lines
    s3, sqs, sns = (boto3.client(n, region_name="us-east-1") for n in ("s3", "sqs", "sns"))
    queue_arn = sqs.get_queue_attributes(QueueUrl=out["Queue"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    expected = resolve_notification(build_template(config, settings), queue_arn)
    assert bucket_notification(s3, out["InboundBucket"]) == expected
    # a second deploy finds it there, and says nothing about it
    lines.clear()
    assert not sc.deploy(config, settings, stack, package).changed
    assert not [line for line in lines if "notification" in line], lines
    assert bucket_notification(s3, out["InboundBucket"]) == expected

    # a subscriber to the stack's topic, to read the receipt back
    inbox = sqs.create_queue(QueueName=f"receipts-{unique}")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=out["Topic"],
        Protocol="sqs",
        Endpoint=inbox_arn,
        Attributes={"RawMessageDelivery": "false"},
    )

    s3.upload_file(str(EXAMPLE / "students.csv"), out["InboundBucket"], "students.csv")

    # the worker runs with exactly the environment the stack gives the function
    env = boto3.client("lambda", region_name="us-east-1").get_function_configuration(
        FunctionName=out["Function"]
    )["Environment"]["Variables"]
    runtime_config = load_config(EXAMPLE / "batchdrop.yaml", environ=env)
    stats = Worker(Runtime(runtime_config), out["Queue"], wait_seconds=1).run(until_empty=True)
    assert stats.received >= 1 and stats.failed == 0

    ddb = boto3.client("dynamodb", region_name="us-east-1")
    items = ddb.query(
        TableName=out["Table"],
        KeyConditionExpression="student_id = :s",
        ExpressionAttributeValues={":s": {"S": "A10002"}},
    )["Items"]
    assert sorted(i["course"]["S"] for i in items) == [
        "Chemistry, Advanced",
        "Modern Forensics",
        "Science Of Deduction",
    ]
    assert [
        o["Key"] for o in s3.list_objects_v2(Bucket=out["InboundBucket"]).get("Contents", [])
    ] == []
    archived = [o["Key"] for o in s3.list_objects_v2(Bucket=out["ArchiveBucket"])["Contents"]]
    assert archived == ["students.csv"]

    messages = sqs.receive_message(
        QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
    ).get("Messages", [])
    envelopes = [json.loads(m["Body"]) for m in messages]
    assert len(envelopes) == 1
    assert envelopes[0]["MessageAttributes"]["status"]["Value"] in ("loaded", "loaded_with_rejects")
    receipt = json.loads(envelopes[0]["Message"])
    assert "students.csv" in json.dumps(receipt)
    loaded = sum(
        len(p["Items"])
        for p in ddb.get_paginator("query").paginate(
            TableName=out["Table"],
            KeyConditionExpression="student_id = :s",
            ExpressionAttributeValues={":s": {"S": "A10001"}},
        )
    )
    assert loaded == 2
    runs = ddb.query(
        TableName=out["LedgerTable"],
        IndexName="runs",
        KeyConditionExpression="run_list = :r",
        ExpressionAttributeValues={":r": {"S": "runs"}},
    )["Items"]
    assert len(runs) == 1
