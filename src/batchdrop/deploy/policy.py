"""The IAM roles of the stack: exactly the actions the runtime calls, each on exactly its resources.

Each statement says why it is there. The only ``"*"`` resource is for X-Ray (when tracing is on),
whose actions cannot be scoped to a resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..aws.secrets import PARAMETER_NAME
from ..state import FEEDS_PREFIX, STATE_PREFIX
from .settings import DeploySettings

Json = dict[str, Any]


@dataclass(frozen=True)
class TableGrant:
    """A data table of the stack, by logical id, and what its feed's writes need beyond
    batches: ``conditional_puts`` for rows written one by one on condition (only_if_newer),
    ``keeps_state`` for loads compared with the last one (a snapshot, changed_only), whose
    state lives in the errors bucket's feeds folder."""

    logical: str
    conditional_puts: bool = False
    keeps_state: bool = False


#: the one table of a config without ``feeds:``
SINGLE_TABLE = (TableGrant("Table"),)


def ref(name: str) -> Json:
    return {"Ref": name}


def getatt(name: str, attr: str) -> Json:
    return {"Fn::GetAtt": [name, attr]}


def sub(text: str) -> Json:
    return {"Fn::Sub": text}


def bucket_arn(bucket: Json | str) -> Json:
    """The ARN of a bucket given by name (a Ref, a Sub or a literal)."""
    return {"Fn::Join": ["", ["arn:", ref("AWS::Partition"), ":s3:::", bucket]]}


def objects_arn(bucket: Json | str, prefix: str = "") -> Json:
    return {"Fn::Join": ["", ["arn:", ref("AWS::Partition"), ":s3:::", bucket, f"/{prefix}*"]]}


def statement(sid: str, actions: list[str], resources: list[Any], **extra: Any) -> Json:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions),
        "Resource": resources,
        **extra,
    }


def assume_role(service: str) -> Json:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}},
            }
        ],
    }


def loader_statements(
    s: DeploySettings,
    *,
    inbound: Json | str,
    inbound_prefix: str,
    archive: Json | str,
    errors: Json | str,
    errors_prefix: str | None = None,
    webhooks: bool = False,
    tables: Sequence[TableGrant] = SINGLE_TABLE,
) -> list[Json]:
    """What the Lambda loader (batchdrop.aws.handler) calls. ``errors_prefix`` (the errors
    location's key prefix) places the run state below it; None leaves the state out."""
    read = ["s3:GetObject", "s3:GetObjectTagging", "s3:DeleteObject"]
    listing = ["s3:ListBucket"]
    if s.versioning:  # files are read, copied and deleted by version id
        read += ["s3:GetObjectVersion", "s3:GetObjectVersionTagging", "s3:DeleteObjectVersion"]
        listing.append("s3:ListBucketVersions")
    list_inbound: Json = statement("ListInbound", listing, [bucket_arn(inbound)])
    if inbound_prefix:
        list_inbound["Condition"] = {"StringLike": {"s3:prefix": [f"{inbound_prefix}*"]}}
    out = [
        statement(
            "Logs", ["logs:CreateLogStream", "logs:PutLogEvents"], [getatt("LogGroup", "Arn")]
        ),
        # read the file (CopyObject also reads its tags), delete it once it has been moved
        statement("ReadAndRemoveInbound", read, [objects_arn(inbound, inbound_prefix)]),
        list_inbound,
        # versioned or not decides how a file version is pinned (version id or ETag)
        statement("InboundVersioning", ["s3:GetBucketVersioning"], [bucket_arn(inbound)]),
        # moved files, rejected-rows reports and receipts (a copy above 5 GB is a multipart
        # copy); before each of them HeadObject asks "is this name taken, and by an earlier
        # copy of this very file?", which is s3:GetObject
        statement(
            "WriteArchiveAndErrors",
            ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"],
            [objects_arn(archive), objects_arn(errors)],
        ),
        # "is this name already taken?" (a missing key answers 403, not 404, without it)
        statement(
            "ListArchiveAndErrors", ["s3:ListBucket"], [bucket_arn(archive), bucket_arn(errors)]
        ),
        *write_table_statements(tables),
        # claims are conditional updates, run records puts (an update and a put go together in
        # one TransactWriteItems, which IAM authorizes as those two actions); the runs index
        # and reads find and finish the runs a crash left behind
        statement(
            "Ledger",
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"],
            [
                getatt("LedgerTable", "Arn"),
                {"Fn::Join": ["/", [getatt("LedgerTable", "Arn"), "index", "*"]]},
            ],
        ),
        statement("Notify", ["sns:Publish"], [ref("Topic")]),
    ]
    if errors_prefix is not None:
        out += run_state_statements(errors, errors_prefix)
        if any(t.keeps_state for t in tables):
            # a load's state replaces the last one's, which it then removes (written, read and
            # listed as the errors location is)
            out.append(
                statement(
                    "RemoveFeedState",
                    ["s3:DeleteObject"],
                    [objects_arn(errors, errors_prefix + FEEDS_PREFIX)],
                )
            )
    if webhooks:
        # the webhook URLs, read once at start (SecureString under the aws/ssm key, whose key
        # policy lets the account's principals decrypt through SSM: no kms:Decrypt needed)
        out.append(statement("ReadWebhooks", ["ssm:GetParameter"], [webhooks_parameter_arn()]))
    if s.trigger == "queue":
        out.append(
            statement(
                "ConsumeQueue",
                ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
                [getatt("Queue", "Arn")],
            )
        )
        # a run paused at a checkpoint queues its file again, as a fresh message; a big file
        # queues its shard tasks (SendMessageBatch is authorised as sqs:SendMessage)
        out.append(statement("RequeuePausedFile", ["sqs:SendMessage"], [getatt("Queue", "Arn")]))
    else:
        # the on-failure destination of asynchronous (S3) invocations
        out.append(
            statement(
                "OnFailureDestination", ["sqs:SendMessage"], [getatt("DeadLetterQueue", "Arn")]
            )
        )
    if s.tracing:
        out.append(xray_statement())
    return out


def write_table_statements(tables: Sequence[TableGrant]) -> list[Json]:
    """The loader's grants on the data tables: each table's own, on that table alone."""
    if [t.logical for t in tables] == ["Table"]:
        # the key checked at start, then batches of writes (reads are the API's, in its role);
        # a snapshot's deletes are DeleteRequests in those batches
        out = [
            statement(
                "WriteTable",
                ["dynamodb:BatchWriteItem", "dynamodb:DescribeTable"],
                [getatt("Table", "Arn")],
            )
        ]
        if tables[0].conditional_puts:
            # only_if_newer writes each row on condition of the stored item's version
            out.append(statement("PutIfNewer", ["dynamodb:PutItem"], [getatt("Table", "Arn")]))
        return out
    # every feed's table: its key checked at start, then batches of writes (a snapshot's
    # deletes are DeleteRequests in those batches)
    out = [
        statement(
            "WriteFeedTables",
            ["dynamodb:BatchWriteItem", "dynamodb:DescribeTable"],
            [getatt(t.logical, "Arn") for t in tables],
        )
    ]
    newer = [getatt(t.logical, "Arn") for t in tables if t.conditional_puts]
    if newer:
        # a feed with only_if_newer writes each row on condition of the stored item's
        # version, on its own table only
        out.append(statement("PutIfNewer", ["dynamodb:PutItem"], newer))
    return out


def run_state_statements(errors: Json | str, errors_prefix: str) -> list[Json]:
    """The state a long pass keeps between invocations (its checkpoint deltas), beside the
    errors location, is written, read and listed as the errors location is (above); a run
    removes its own when it ends: the only deletes in the errors bucket."""
    return [
        statement(
            "RemoveRunState",
            ["s3:DeleteObject"],
            [objects_arn(errors, errors_prefix + STATE_PREFIX)],
        )
    ]


def webhooks_parameter_arn() -> Json:
    """The ARN of the stack's SSM parameter holding the webhook URLs (a name starting with /)."""
    name = PARAMETER_NAME.format(stack="${AWS::StackName}")
    return sub(f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{name}")


def xray_statement() -> Json:
    # X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions.
    return statement("Tracing", ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], ["*"])


def api_statements(
    s: DeploySettings,
    tables: Sequence[TableGrant] = SINGLE_TABLE,
    reports: tuple[Json | str, str] | None = None,
) -> list[Json]:
    """What the query API (batchdrop.api.lambda_handler) calls: reads only (of every feed's
    table, with ``feeds:``; with ``reports``, the errors bucket and prefix, the runs page's
    rejected-rows reports there and nothing else of that bucket)."""
    out = [
        statement(
            "Logs", ["logs:CreateLogStream", "logs:PutLogEvents"], [getatt("ApiLogGroup", "Arn")]
        ),
        statement(
            "ReadTable" if tuple(tables) == SINGLE_TABLE else "ReadFeedTables",
            ["dynamodb:GetItem", "dynamodb:Query"],
            [getatt(t.logical, "Arn") for t in tables],
        ),
        statement(
            "ReadLedger",
            ["dynamodb:GetItem", "dynamodb:Query"],
            [
                getatt("LedgerTable", "Arn"),
                {"Fn::Join": ["/", [getatt("LedgerTable", "Arn"), "index", "*"]]},
            ],
        ),
    ]
    if reports is not None:
        bucket, prefix = reports
        report_arn = {
            "Fn::Join": [
                "",
                ["arn:", ref("AWS::Partition"), ":s3:::", bucket, f"/{prefix}*.rejected.csv"],
            ]
        }
        # the runs page streams a run's rejected-rows report (web/reports.py)
        out.append(statement("ReadRejectedRowsReports", ["s3:GetObject"], [report_arn]))
    if s.tracing:
        out.append(xray_statement())
    return out


def role(service: str, policy_name: str, statements: list[Json]) -> Json:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": assume_role(service),
            "Policies": [
                {
                    "PolicyName": policy_name,
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
                }
            ],
        },
    }
