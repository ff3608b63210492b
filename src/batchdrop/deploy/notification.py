"""The inbound bucket's event notification, checked once the stack is up.

CloudFormation sets it from the bucket's ``NotificationConfiguration``; some emulators create
the bucket and leave that property out, so no upload would ever reach the queue or function.
``ensure_notification`` reads the bucket's configuration back and, when the template's rules are
not all there, applies them through the S3 API: exactly what CloudFormation would have set.
On AWS it finds them and does nothing. The deployer needs ``s3:GetBucketNotification`` and
``s3:PutBucketNotification`` on the inbound bucket (CloudFormation needs them too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .policy import Json

#: CloudFormation's keys of a notification → the S3 API's keys, and the target's ARN key
KINDS = {
    "QueueConfigurations": ("QueueConfigurations", "Queue", "QueueArn"),
    "LambdaConfigurations": ("LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
}

Rule = tuple[str, str, frozenset[str], frozenset[tuple[str, str]]]


def declared(template: Json) -> Json | None:
    """The inbound bucket's NotificationConfiguration in ``template`` (None when the stack
    does not manage the bucket)."""
    bucket = template.get("Resources", {}).get("InboundBucket", {})
    note = bucket.get("Properties", {}).get("NotificationConfiguration")
    return note if isinstance(note, dict) else None


def for_api(note: Json, arns: dict[str, str]) -> Json:
    """A CloudFormation NotificationConfiguration in the S3 API's shape, each target (``Queue``,
    ``Function``) replaced by its ARN from ``arns``."""
    out: Json = {}
    for cfn_key, (api_key, target, arn_key) in KINDS.items():
        if cfn_key in note:
            out[api_key] = [
                {
                    arn_key: arns[target],
                    "Events": [c["Event"]],
                    "Filter": {"Key": {"FilterRules": c["Filter"]["S3Key"]["Rules"]}},
                }
                for c in note[cfn_key]
            ]
    return out


def rules(config: Json) -> set[Rule]:
    """A notification configuration (the S3 API's shape) as comparable rules: S3 answers with
    ids of its own and spells filter names ``Prefix``/``Suffix``."""
    out: set[Rule] = set()
    for api_key, _, arn_key in KINDS.values():
        for c in config.get(api_key, []):
            filters = c.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            out.add(
                (
                    api_key,
                    c.get(arn_key, ""),
                    frozenset(c.get("Events", [])),
                    frozenset((f["Name"].lower(), f["Value"]) for f in filters),
                )
            )
    return out


def target_arn(client: Callable[[str], Any], outputs: dict[str, str], target: str) -> str:
    """The ARN of the stack's ``Queue`` or ``Function``, named in ``outputs``."""
    if target == "Queue":
        attrs = client("sqs").get_queue_attributes(
            QueueUrl=outputs["Queue"], AttributeNames=["QueueArn"]
        )
        return str(attrs["Attributes"]["QueueArn"])
    found = client("lambda").get_function(FunctionName=outputs["Function"])
    return str(found["Configuration"]["FunctionArn"])


def ensure_notification(
    client: Callable[[str], Any],
    template: Json,
    outputs: dict[str, str],
    echo: Callable[[str], None],
) -> bool:
    """Apply the template's notification to the stack's inbound bucket unless all its rules are
    there; returns whether it was applied. ``client(service)`` makes the AWS clients."""
    from botocore.exceptions import ClientError

    note = declared(template)
    bucket = outputs.get("InboundBucket")
    if not note or not bucket:
        return False
    s3 = client("s3")
    try:
        current = s3.get_bucket_notification_configuration(Bucket=bucket)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        echo(
            f"note: could not read the notification of {bucket} ({code}); the deployer needs "
            "s3:GetBucketNotification to check it"
        )
        return False
    targets = {t for cfn_key, (_, t, _) in KINDS.items() if cfn_key in note}
    wanted = for_api(note, {t: target_arn(client, outputs, t) for t in targets})
    have = rules(current)
    if rules(wanted) <= have:
        return False
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=wanted)
    if have:
        echo("the inbound bucket's notification was not the template's: applied")
    else:
        echo("the inbound bucket had no notification (an emulator ignores it in a stack): applied")
    return True
