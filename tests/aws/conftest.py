"""AWS fixtures: a fresh set of buckets, tables, a topic and queues on the moto server per test.

Every resource name carries the test's unique suffix, so tests share one server safely.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import yaml

from batchdrop.aws import clients
from batchdrop.config import Config, parse_config
from batchdrop.deploy.template import render
from batchdrop.tables.dynamodb_ledger import ledger_table_spec

from .iam import ACCOUNT, REGION, Resolver, create_user, notification_for_api, role_policy, without

EVENTS = Path(__file__).resolve().parent / "events"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "students"
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


def template_config(_config: dict[str, Any] | None = None, **deploy: Any) -> Config:
    """The example's config as deployed: what ``batchdrop template`` is given for the stack of
    ``iam_stack`` (the names are the stack's own; only the shape of the locations matters),
    with the settings ``_config`` on top."""
    data = yaml.safe_load((EXAMPLE / "batchdrop.yaml").read_text(encoding="utf-8"))
    data.update(_config or {})
    data.update(
        inbound="s3://inbound/incoming/",
        archive="s3://archive/",
        errors="s3://errors/rejected/",
        notify=["console", "https://hooks.example.com/services/T0/B0/secret"],
        deploy={"api": True, **deploy},
    )
    data["table"] = {**data["table"], "url": "dynamodb://students"}
    return parse_config(data, source="test", environ={})


@dataclass
class IamStack(Stack):
    """A ``Stack`` on the IAM-enforcing server, made from the template's resources.

    Its clients (``s3``, ``ddb``…) sign as the administrator; batchdrop's own clients sign with
    the keys in the environment, which ``run_as`` points at a user holding exactly one role's
    policy from the template, resolved to these resources.
    """

    server: Any = None  # the IamServer of tests/conftest.py
    stack_name: str = ""
    template: dict[str, Any] = field(default_factory=dict)
    resolve: Resolver | None = None
    events_queue: str = ""
    monkeypatch: pytest.MonkeyPatch | None = None
    users: int = 0

    def policy(self, role: str = "Role") -> dict[str, Any]:
        assert self.resolve is not None
        return role_policy(self.template, role, self.resolve)

    def run_as(self, role: str = "Role", drop: set[str] | frozenset[str] = frozenset()) -> None:
        """From now on batchdrop acts as a user with ``role``'s policy, less ``drop``."""
        assert self.server is not None and self.monkeypatch is not None
        self.users += 1
        name = f"{role.lower()}-{self.suffix}-{self.users}"
        key, secret = create_user(
            self.server.client("iam"), name, without(self.policy(role), set(drop))
        )
        self._sign_as(key, secret)

    @contextlib.contextmanager
    def as_admin(self) -> Iterator[None]:
        """batchdrop acts as the administrator for a while (to prepare a state)."""
        user = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
        self._sign_as(self.server.admin_key, self.server.admin_secret)
        try:
            yield
        finally:
            self._sign_as(*user)

    def _sign_as(self, key: str, secret: str) -> None:
        assert self.monkeypatch is not None
        self.monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        self.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        clients.clear_cache()

    def function_environment(self, function: str = "Function") -> dict[str, str]:
        """The function's environment variables, resolved to this stack's resources."""
        assert self.resolve is not None
        props = self.template["Resources"][function]["Properties"]
        return {k: str(v) for k, v in self.resolve(props["Environment"]["Variables"]).items()}


def _queue_attributes(props: dict[str, Any], resolve: Resolver) -> dict[str, str]:
    out = {"MessageRetentionPeriod": str(props["MessageRetentionPeriod"])}
    if "VisibilityTimeout" in props:
        out["VisibilityTimeout"] = str(props["VisibilityTimeout"])
    if "RedrivePolicy" in props:
        out["RedrivePolicy"] = json.dumps(resolve(props["RedrivePolicy"]))
    return out


@pytest.fixture
def iam_stack(
    request: pytest.FixtureRequest,
    iam_moto_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    unique: str,
) -> Iterator[IamStack]:
    """The resources of the example's stack on the IAM-enforcing server, made as the
    administrator from ``batchdrop template``'s output, with batchdrop running as the loader
    function's role (``run_as`` switches roles). Parametrize it indirectly with ``deploy:``
    settings (``{"versioning": True}``) for another variant of the template (and ``_config``:
    settings of the config it is made from)."""
    server = iam_moto_server
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.admin_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.admin_secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)  # an IAM user's keys have none
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    clients.clear_cache()
    template = yaml.safe_load(render(template_config(**getattr(request, "param", {}))))
    res = template["Resources"]
    st = IamStack(endpoint=server.url, suffix=unique, server=server, monkeypatch=monkeypatch)
    st.template, st.stack_name = template, f"bd{unique}"
    st.s3, st.ddb = server.client("s3"), server.client("dynamodb")
    st.sns, st.sqs = server.client("sns"), server.client("sqs")
    physical: dict[str, dict[str, str]] = {}
    st.resolve = resolve = Resolver(st.stack_name, physical, {"NotifyParameterVersion": "1"})

    st.archive, st.errors = f"archive-{unique}", f"err-{unique}"
    physical["ArchiveBucket"] = {"Ref": st.archive, "Arn": f"arn:aws:s3:::{st.archive}"}
    physical["ErrorsBucket"] = {"Ref": st.errors, "Arn": f"arn:aws:s3:::{st.errors}"}
    st.inbound = resolve(template["Outputs"]["InboundBucket"]["Value"])
    physical["InboundBucket"] = {"Ref": st.inbound, "Arn": f"arn:aws:s3:::{st.inbound}"}
    for b, logical in (
        (st.inbound, "InboundBucket"),
        (st.archive, "ArchiveBucket"),
        (st.errors, "ErrorsBucket"),
    ):
        st.s3.create_bucket(Bucket=b)
        if "VersioningConfiguration" in res[logical]["Properties"]:
            st.s3.put_bucket_versioning(
                Bucket=b,
                VersioningConfiguration=res[logical]["Properties"]["VersioningConfiguration"],
            )

    st.table, st.ledger = f"students-{unique}", f"students-{unique}-ledger"
    for logical, name in (("Table", st.table), ("LedgerTable", st.ledger)):
        props = res[logical]["Properties"]
        keep = ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes")
        made = st.ddb.create_table(TableName=name, **{k: props[k] for k in keep if k in props})
        physical[logical] = {"Ref": name, "Arn": made["TableDescription"]["TableArn"]}

    st.topic_arn = st.sns.create_topic(Name=f"receipts-{unique}")["TopicArn"]
    physical["Topic"] = {"Ref": st.topic_arn, "TopicName": f"receipts-{unique}"}
    for logical, name in (("DeadLetterQueue", f"dlq-{unique}"), ("Queue", f"events-{unique}")):
        url = st.sqs.create_queue(
            QueueName=name, Attributes=_queue_attributes(res[logical]["Properties"], resolve)
        )["QueueUrl"]
        arn = st.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        physical[logical] = {"Ref": url, "Arn": arn, "QueueName": name}
    st.events_queue = physical["Queue"]["Ref"]
    for logical in ("LogGroup", "ApiLogGroup", "ApiAccessLogGroup"):
        name = f"/aws/lambda/{st.stack_name}-{logical}"
        arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"
        physical[logical] = {"Ref": name, "Arn": arn}

    # what S3 does for the stack: ObjectCreated events of the inbound prefix to the queue
    note = resolve(res["InboundBucket"]["Properties"]["NotificationConfiguration"])
    st.s3.put_bucket_notification_configuration(
        Bucket=st.inbound, NotificationConfiguration=notification_for_api(note)
    )
    # a subscriber to the topic, to read receipts back
    st.receipts_queue = st.sqs.create_queue(QueueName=f"receipts-{unique}")["QueueUrl"]
    arn = st.sqs.get_queue_attributes(QueueUrl=st.receipts_queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    st.sns.subscribe(TopicArn=st.topic_arn, Protocol="sqs", Endpoint=arn)
    st.run_as("Role")
    yield st
    clients.clear_cache()
