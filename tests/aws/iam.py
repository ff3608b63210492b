"""The template's IAM policies as real credentials on the IAM-enforcing moto server.

``role_policy`` takes a role's inline policy from ``batchdrop template``'s output and resolves its
intrinsic functions (``Ref`` of pseudo parameters, resources and template parameters,
``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``) to the test's own resources; ``create_user`` makes an
IAM user holding exactly that policy and returns its keys, so batchdrop runs with what a
deployed function would hold.

What moto's IAM enforcement checks (moto 5: ``moto/core/authorization.py``,
``moto/iam/access_control.py``, ``moto/s3/responses.py``), and how ``for_moto`` bridges the gaps
without granting anything the template does not:

- Every request is checked once ``INITIAL_NO_AUTH_ACTION_COUNT`` requests have been served: its
  SigV4 signature must match a known user's secret key, and the user's policies must allow the
  action. That holds for every service that dispatches through ``BaseResponse.call_action``
  (DynamoDB, SNS, SQS, SSM, Lambda, CloudWatch Logs, STS, IAM…) and for S3, which checks in
  its own dispatcher.
- The resource is checked only for S3 (``arn:aws:s3:::bucket`` or ``…:::bucket/key``) and SQS (the
  queue's ARN). Every other service is checked against the resource ``"*"``, which a statement
  naming an ARN never matches: ``for_moto`` widens those statements to ``"*"``, so for DynamoDB,
  SNS and SSM only the actions are enforced; that their ARNs name the right resources is
  checked apart (``tests/aws/test_iam_policy.py``). For the same reason, removing such an action
  from one statement shows nothing while another statement grants it.
- The action is the API operation's name. S3 maps requests to IAM actions as AWS does (HEAD or
  GET of an object → ``s3:GetObject``, ``?versionId`` → ``s3:GetObjectVersion``, a listing →
  ``s3:ListBucket``), but batch operations keep their own names where AWS authorizes them as
  another action: ``MOTO_ALIASES`` adds the operation's name to a statement that grants every
  action AWS requires for it.
- Not enforced by moto: conditions (only ``StringEquals`` is evaluated, and without request
  context, so the inbound listing's ``s3:prefix`` condition is never applied); resource-based
  policies (bucket and queue policies, KMS key policies); the read of a CopyObject's source
  (``s3:GetObject``/``s3:GetObjectTagging`` on inbound); and the 403 that AWS answers instead of
  404 for a missing key when the caller lacks ``s3:ListBucket``.
- Other differences a test meets: a refusal of a JSON-protocol service (DynamoDB, SQS, SSM) comes
  back as an XML body, so botocore reports the code ``403`` where AWS says
  ``AccessDeniedException``; Lambda's API fails every signature check while IAM is enforced
  (``IamServer.unenforced`` reads a function's configuration); an IAM user's keys must be used
  without a session token.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"

#: services whose requests moto authorizes against the real resource ARN
RESOURCE_CHECKED = frozenset({"s3", "sqs"})
#: API operation (as moto names the action) → the IAM actions AWS requires for it in batchdrop's
#: use (its one TransactWriteItems holds an Update and a Put)
MOTO_ALIASES = {
    "dynamodb:TransactWriteItems": frozenset({"dynamodb:PutItem", "dynamodb:UpdateItem"}),
    "dynamodb:TransactGetItems": frozenset({"dynamodb:GetItem"}),
    "sqs:DeleteMessageBatch": frozenset({"sqs:DeleteMessage"}),
    "sqs:ChangeMessageVisibilityBatch": frozenset({"sqs:ChangeMessageVisibility"}),
    "sqs:SendMessageBatch": frozenset({"sqs:SendMessage"}),
}
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::URLSuffix": "amazonaws.com",
}


class Resolver:
    """Evaluates a template's intrinsic functions against the resources a test made.

    ``physical`` maps a logical id to its attributes: ``Ref`` (what ``{"Ref": id}`` gives) and
    any ``Fn::GetAtt`` attribute (``Arn``…). A reference to anything else fails loudly: the test
    must create every resource a policy names.
    """

    def __init__(
        self,
        stack_name: str,
        physical: dict[str, dict[str, str]],
        parameters: dict[str, str] | None = None,
    ):
        self.values = {**PSEUDO, "AWS::StackName": stack_name, **(parameters or {})}
        self.physical = physical

    def ref(self, name: str) -> str:
        if name in self.values:
            return self.values[name]
        return self.attribute(name, "Ref")

    def attribute(self, name: str, attr: str) -> str:
        try:
            return self.physical[name][attr]
        except KeyError:
            raise KeyError(
                f"the template refers to {name}.{attr}, which the test did not make"
            ) from None

    def __call__(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self.ref(value)
            if key == "Fn::GetAtt":
                name, attr = value if isinstance(value, list) else value.split(".", 1)
                return self.attribute(name, attr)
            if key == "Fn::Join":
                sep, parts = value
                return sep.join(str(self(p)) for p in parts)
            if key == "Fn::Sub":
                text, local = (value, {}) if isinstance(value, str) else value
                local = {k: self(v) for k, v in local.items()}
                return re.sub(r"\$\{([^}!]+)\}", lambda m: self._sub(m.group(1), local), text)
            if key.startswith("Fn::"):
                raise ValueError(f"{key} is not resolved by the tests: add it to Resolver")
        return {k: self(v) for k, v in node.items()}

    def _sub(self, name: str, local: dict[str, str]) -> str:
        if name in local:
            return local[name]
        if "." in name:
            logical, attr = name.split(".", 1)
            return self.attribute(logical, attr)
        return self.ref(name)


def role_policy(template: dict[str, Any], role: str, resolve: Resolver) -> dict[str, Any]:
    """The inline policy of ``role`` in ``template``, resolved. A role has exactly one."""
    (policy,) = template["Resources"][role]["Properties"]["Policies"]
    return resolve(policy["PolicyDocument"])  # type: ignore[no-any-return]


def actions(policy: dict[str, Any]) -> set[str]:
    return {a for st in policy["Statement"] for a in st["Action"]}


def without(policy: dict[str, Any], dropped: set[str]) -> dict[str, Any]:
    """``policy`` less the grants in ``dropped``: an action (from every statement) or
    ``Sid/action`` (from that statement only). A statement left empty goes."""
    out = copy.deepcopy(policy)
    statements = []
    for st in out["Statement"]:
        st["Action"] = [
            a for a in st["Action"] if a not in dropped and f"{st.get('Sid')}/{a}" not in dropped
        ]
        if st["Action"]:
            statements.append(st)
    out["Statement"] = statements
    return out


def for_moto(policy: dict[str, Any]) -> dict[str, Any]:
    """``policy`` as moto can enforce it: the same actions, spelt as moto checks them."""
    out = bridged(policy)
    for st in out["Statement"]:
        granted = set(st["Action"])
        services = {a.split(":", 1)[0] for a in granted}
        if not services <= RESOURCE_CHECKED:
            st["Resource"] = "*"
        st["Action"] = sorted(
            granted | {alias for alias, needs in MOTO_ALIASES.items() if needs <= granted}
        )
    return out


def bridged(policy: dict[str, Any]) -> dict[str, Any]:
    """``policy`` as moto can enforce DeleteObjects: moto authorizes the whole request as
    s3:DeleteObject on the bucket's ARN (AWS checks each key), so a bucket whose objects may be
    deleted (somewhere) gets that grant on its ARN. Single deletes stay checked key by key."""
    out = copy.deepcopy(policy)
    buckets = sorted(
        {
            r.split("/", 1)[0]
            for st in out["Statement"]
            if "s3:DeleteObject" in st["Action"]
            for r in st["Resource"]
            if r.startswith("arn:aws:s3:::") and "/" in r
        }
    )
    if buckets:
        out["Statement"].append(
            {
                "Sid": "MotoDeleteObjects",
                "Effect": "Allow",
                "Action": ["s3:DeleteObject"],
                "Resource": buckets,
            }
        )
    return out


def create_user(iam: Any, name: str, policy: dict[str, Any]) -> tuple[str, str]:
    """An IAM user holding exactly ``policy`` (inline); returns its access key and secret."""
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name, PolicyName="batchdrop", PolicyDocument=json.dumps(for_moto(policy))
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def notification_for_api(note: dict[str, Any]) -> dict[str, Any]:
    """A bucket's resolved CloudFormation NotificationConfiguration in the S3 API's shape
    (``put_bucket_notification_configuration``)."""
    out: dict[str, Any] = {}
    for cfn_key, api_key, target in (
        ("QueueConfigurations", "QueueConfigurations", "Queue"),
        ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function"),
    ):
        if cfn_key in note:
            out[api_key] = [
                {
                    ("QueueArn" if target == "Queue" else "LambdaFunctionArn"): c[target],
                    "Events": [c["Event"]],
                    "Filter": {"Key": {"FilterRules": c["Filter"]["S3Key"]["Rules"]}},
                }
                for c in note[cfn_key]
            ]
    return out


def physical_resources(client: Any, stack_name: str) -> dict[str, dict[str, str]]:
    """What a deployed stack's resources answer to ``Ref`` and ``Fn::GetAtt`` (for
    ``Resolver``), read back from CloudFormation and the services; ``client(service)`` makes
    the clients."""
    out: dict[str, dict[str, str]] = {}
    listed = client("cloudformation").describe_stack_resources(StackName=stack_name)
    for r in listed["StackResources"]:
        logical, pid, kind = (
            r.get("LogicalResourceId"),
            r.get("PhysicalResourceId"),
            r.get("ResourceType"),
        )
        if not logical or not pid:
            continue
        if kind == "AWS::S3::Bucket":
            out[logical] = {"Ref": pid, "Arn": f"arn:aws:s3:::{pid}"}
        elif kind == "AWS::DynamoDB::Table":
            table = client("dynamodb").describe_table(TableName=pid)["Table"]
            out[logical] = {"Ref": pid, "Arn": table["TableArn"]}
        elif kind == "AWS::SQS::Queue":
            sqs = client("sqs")
            url = pid if pid.startswith("http") else sqs.get_queue_url(QueueName=pid)["QueueUrl"]
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            out[logical] = {"Ref": url, "Arn": attrs["Attributes"]["QueueArn"]}
        elif kind == "AWS::SNS::Topic":
            out[logical] = {"Ref": pid, "TopicName": pid.rsplit(":", 1)[1]}
        elif kind == "AWS::Logs::LogGroup":
            out[logical] = {"Ref": pid, "Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{pid}:*"}
    return out
