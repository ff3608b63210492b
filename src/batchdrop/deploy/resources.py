"""One function per CloudFormation resource of the stack, each secure by default.

Where checkov flags a choice made on purpose, the resource says so in its Metadata, with the
reason, so a review of the template shows every exception in one place.
"""

from __future__ import annotations

from ..state import STATE_PREFIX
from ..tables.dynamodb_ledger import ledger_table_spec
from .policy import Json, getatt, ref
from .settings import DeploySettings


def skip(resource: Json, *checks: tuple[str, str]) -> Json:
    """Record checks skipped on purpose, with their reasons, in the resource's Metadata."""
    meta = resource.setdefault("Metadata", {}).setdefault("checkov", {"skip": []})
    meta["skip"] += [{"id": cid, "comment": why} for cid, why in checks]
    return resource


#: a run removes its own state when it ends; what is older than this was abandoned for good
STATE_EXPIRY_DAYS = 14


def state_expiry(s: DeploySettings, errors_prefix: str) -> Json:
    """The lifecycle rule that expires run state left behind (a run that never came back)."""
    rule: Json = {
        "Id": "expire-abandoned-run-state",
        "Status": "Enabled",
        "Prefix": errors_prefix + STATE_PREFIX,
        "ExpirationInDays": STATE_EXPIRY_DAYS,
    }
    if s.versioning:  # a removed object's old versions would otherwise stay for ever
        rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": 1}
    return rule


def bucket(s: DeploySettings, *, name: Json | None, errors_prefix: str | None = None) -> Json:
    """A bucket of the stack; ``errors_prefix`` when it holds the errors location (and so the
    run state below it, which then expires)."""
    props: Json = {
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {
                    "ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BucketKeyEnabled": True,
                }
            ]
        },
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "LifecycleConfiguration": {
            "Rules": [
                {
                    "Id": "abort-incomplete-uploads",
                    "Status": "Enabled",
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                }
            ]
        },
    }
    if errors_prefix is not None:
        props["LifecycleConfiguration"]["Rules"].append(state_expiry(s, errors_prefix))
    if name is not None:
        props = {"BucketName": name, **props}
    if s.versioning:
        props["VersioningConfiguration"] = {"Status": "Enabled"}
    out: Json = {
        "Type": "AWS::S3::Bucket",
        # files outlive the stack: `batchdrop destroy` removes only empty buckets
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": props,
    }
    skip(
        out,
        (
            "CKV_AWS_18",
            "access logging needs a log bucket of its own; every file's "
            "fate is recorded in the run ledger and the function's logs",
        ),
    )
    if not s.versioning:
        skip(
            out,
            (
                "CKV_AWS_21",
                "batchdrop never overwrites a key (it picks a new name); "
                "enable deploy.versioning to keep every version",
            ),
        )
    return out


def tls_only_policy(bucket_logical: str) -> Json:
    arn = getatt(bucket_logical, "Arn")
    return {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": ref(bucket_logical),
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DenyWithoutTLS",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [arn, {"Fn::Join": ["", [arn, "/*"]]}],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            },
        },
    }


def notification(trigger: str, target_arn: Json, prefix: str, *suffixes: str) -> Json:
    """Every ObjectCreated event (PUT, POST, copy, multipart upload) for each readable suffix
    (each of ``suffixes``, plain or gzipped).

    S3 refuses two rules whose suffixes overlap (one ends with the other): a suffix that ends
    with another is already covered by it and is left out. ``.csv`` and ``.csv.gz`` do not
    overlap, so S3 accepts both rules.
    """
    wanted = list(dict.fromkeys(x for sfx in suffixes for x in (sfx, sfx + ".gz")))
    kept = [x for x in wanted if not any(x != y and x.endswith(y) for y in wanted)]
    items = []
    for sfx in kept:
        rules = [{"Name": "suffix", "Value": sfx}]
        if prefix:
            rules.insert(0, {"Name": "prefix", "Value": prefix})
        target = {"Queue": target_arn} if trigger == "queue" else {"Function": target_arn}
        items.append(
            {"Event": "s3:ObjectCreated:*", "Filter": {"S3Key": {"Rules": rules}}, **target}
        )
    key = "QueueConfigurations" if trigger == "queue" else "LambdaConfigurations"
    return {key: items}


def queue(retention: int, *, visibility: int | None = None, redrive: Json | None = None) -> Json:
    props: Json = {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": retention}
    if visibility is not None:
        props["VisibilityTimeout"] = visibility
    if redrive is not None:
        props["RedrivePolicy"] = redrive
    return skip(
        {"Type": "AWS::SQS::Queue", "Properties": props},
        (
            "CKV_AWS_27",
            "encrypted with SQS managed keys (SSE-SQS): S3 cannot send event "
            "notifications to a queue encrypted with the AWS managed KMS key",
        ),
    )


def queue_policy(inbound_arn: Json) -> Json:
    queue_arn = getatt("Queue", "Arn")
    return {
        "Type": "AWS::SQS::QueuePolicy",
        "Properties": {
            "Queues": [ref("Queue")],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "InboundBucketEvents",
                        "Effect": "Allow",
                        "Principal": {"Service": "s3.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": queue_arn,
                        "Condition": {
                            "ArnEquals": {"aws:SourceArn": inbound_arn},
                            "StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")},
                        },
                    },
                    {
                        "Sid": "DenyWithoutTLS",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "sqs:*",
                        "Resource": queue_arn,
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    },
                ],
            },
        },
    }


def event_source_mapping(s: DeploySettings, concurrency: int) -> Json:
    """The function takes the queue's messages (files, and a big file's shard tasks) with at
    most ``concurrency`` invocations at once: the shards a table is written by at a time."""
    props: Json = {
        "EventSourceArn": getatt("Queue", "Arn"),
        "FunctionName": ref("Function"),
        "BatchSize": s.queue_batch_size,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "Enabled": True,
        "ScalingConfig": {"MaximumConcurrency": concurrency},
    }
    return {"Type": "AWS::Lambda::EventSourceMapping", "Properties": props}


def invoke_permission(inbound_arn: Json) -> Json:
    return {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": ref("Function"),
            "Principal": "s3.amazonaws.com",
            "SourceArn": inbound_arn,
            "SourceAccount": ref("AWS::AccountId"),
        },
    }


def event_invoke_config() -> Json:
    return {
        "Type": "AWS::Lambda::EventInvokeConfig",
        "Properties": {
            "FunctionName": ref("Function"),
            "Qualifier": "$LATEST",
            "MaximumRetryAttempts": 2,
            "DestinationConfig": {"OnFailure": {"Destination": getatt("DeadLetterQueue", "Arn")}},
        },
    }


def _key_schema(keys: list[tuple[str, str, str]]) -> tuple[list[Json], list[Json]]:
    attrs = [{"AttributeName": n, "AttributeType": t} for n, t, _ in keys]
    schema = [{"AttributeName": n, "KeyType": k} for n, _, k in keys]
    return attrs, schema


def _billing(s: DeploySettings) -> Json:
    if s.billing == "on_demand":
        return {"BillingMode": "PAY_PER_REQUEST"}
    return {
        "BillingMode": "PROVISIONED",
        "ProvisionedThroughput": {
            "ReadCapacityUnits": s.read_capacity,
            "WriteCapacityUnits": s.write_capacity,
        },
    }


def _table(s: DeploySettings, attrs: list[Json], schema: list[Json]) -> Json:
    out: Json = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "AttributeDefinitions": attrs,
            "KeySchema": schema,
            **_billing(s),
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    }
    why = (
        "encrypted with the AWS managed key (aws/dynamodb); a customer managed key adds a "
        "key policy to manage and pay for"
    )
    return skip(out, ("CKV_AWS_119", why))


def table(s: DeploySettings, keys: list[tuple[str, str, str]]) -> Json:
    return _table(s, *_key_schema(keys))


def ledger_table(s: DeploySettings) -> Json:
    """The ledger's keys and index, as the DynamoDB ledger defines them."""
    spec = ledger_table_spec("ledger")
    indexes = spec["GlobalSecondaryIndexes"]
    if s.billing == "provisioned":
        indexes = [
            {**i, "ProvisionedThroughput": _billing(s)["ProvisionedThroughput"]} for i in indexes
        ]
    out = _table(s, spec["AttributeDefinitions"], spec["KeySchema"])
    out["Properties"]["GlobalSecondaryIndexes"] = indexes
    return out


def log_group(s: DeploySettings) -> Json:
    out: Json = {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {"RetentionInDays": s.log_retention_days},
    }
    skip(
        out,
        (
            "CKV_AWS_158",
            "encrypted by CloudWatch Logs by default; logs hold counts and "
            "file names, not row data",
        ),
    )
    if s.log_retention_days < 365:
        skip(
            out,
            (
                "CKV_AWS_338",
                f"retention set to {s.log_retention_days} days by deploy.log_retention_days",
            ),
        )
    return out


def function(
    s: DeploySettings,
    handler: str,
    role_logical: str,
    log_logical: str,
    env: Json,
    *,
    memory: int | None = None,
    timeout: int | None = None,
) -> Json:
    props: Json = {
        "Runtime": "python3.12",
        "Handler": handler,
        "Code": {"S3Bucket": ref("CodeBucket"), "S3Key": ref("CodeKey")},
        "Role": getatt(role_logical, "Arn"),
        "MemorySize": memory or s.memory_mb,
        "Timeout": timeout or s.timeout_s,
        "Architectures": [s.architecture],
        "Environment": {"Variables": env},
        "LoggingConfig": {"LogGroup": ref(log_logical), "LogFormat": "JSON"},
    }
    if s.tracing:
        props["TracingConfig"] = {"Mode": "Active"}
    out: Json = {"Type": "AWS::Lambda::Function", "Properties": props}
    skip(
        out,
        ("CKV_AWS_117", "calls only AWS service endpoints; a VPC would need NAT or endpoints"),
        ("CKV_AWS_173", "the environment holds resource names only, no secrets"),
    )
    if not s.tracing:
        skip(out, ("CKV_AWS_50", "X-Ray tracing is off; enable it with deploy.tracing"))
    return out


def loader_function(s: DeploySettings, handler: str, env: Json) -> Json:
    out = function(s, handler, "Role", "LogGroup", env)
    if s.sequential:
        out["Properties"]["ReservedConcurrentExecutions"] = 1
    else:
        skip(
            out,
            (
                "CKV_AWS_115",
                "files are independent; concurrency is bounded by the "
                "account (set deploy.sequential or deploy.max_concurrency)",
            ),
        )
    if s.trigger == "queue":
        why = (
            "invoked synchronously by the queue's event source mapping; failed messages go "
            "to the queue's dead-letter queue"
        )
    else:
        why = (
            "failed asynchronous events go to the on-failure destination "
            "(EventInvokeConfig), which records more than a dead-letter queue"
        )
    return skip(out, ("CKV_AWS_116", why))
