"""Create, update and delete the stack through change sets; honours ``AWS_ENDPOINT_URL``.

``deploy`` uploads the package under a content-addressed key, so an unchanged config and
package produce an unchanged template: CloudFormation answers "didn't contain changes", the
empty change set is deleted, and nothing else happens.

The config's webhook URLs, which are credentials, go to an SSM SecureString parameter before
the stack is applied (CloudFormation cannot create SecureString parameters); the template only
names it and pins its version. ``destroy`` deletes it with the stack.

Once the stack is up, the inbound bucket's notification is checked against the template's (an
emulator may leave it out): ``notification.py``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..aws.secrets import parameter_name, webhooks
from ..errors import BatchdropError, ConfigError, TransientError
from .alarms import monitored_template
from .notification import ensure_notification
from .package import Package
from .policy import Json
from .settings import DeploySettings
from .template import VERSION_PARAMETER, to_yaml

if TYPE_CHECKING:
    from ..config import Config

Echo = Callable[[str], None]
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
TERMINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "IMPORT_COMPLETE"}


def _output_keys(template: Any) -> set[str]:
    if isinstance(template, str):
        import yaml

        try:
            template = yaml.safe_load(template)
        except yaml.YAMLError:
            return set()
    return set((template or {}).get("Outputs", {})) if isinstance(template, dict) else set()


def _has_webhooks(stack: dict[str, Any] | None) -> bool:
    """Whether ``stack`` was deployed with webhook URLs (kept in its SSM parameter)."""
    params = (stack or {}).get("Parameters", [])
    return any(p.get("ParameterKey") == VERSION_PARAMETER for p in params)


class DeployError(BatchdropError):
    """CloudFormation could not create, update or delete the stack."""


@dataclass
class DeployResult:
    stack_name: str
    changed: bool
    outputs: dict[str, str] = field(default_factory=dict)


class StackClient:
    """The boto3 clients the deploy commands use, built lazily from the config."""

    def __init__(
        self, config: Config, *, session: Any = None, poll: float = 5.0, echo: Echo = print
    ):
        import boto3

        self.session = session or boto3.session.Session(region_name=config.aws.region)
        self.endpoint = config.aws.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        self.cfn = self._client("cloudformation")
        self.s3 = self._client("s3")
        self.ssm = self._client("ssm")
        self.poll = poll
        self.echo = echo

    def _client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint)

    @property
    def region(self) -> str:
        return self.session.region_name or "us-east-1"

    def account(self) -> str:
        return str(self._client("sts").get_caller_identity()["Account"])

    # --- stack state ----------------------------------------------------------------------

    def stack(self, name: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            stacks = self.cfn.describe_stacks(StackName=name)["Stacks"]
        except ClientError as e:
            if "does not exist" in str(e):
                return None
            raise
        return stacks[0] if stacks else None

    def outputs(self, name: str) -> dict[str, str]:
        """The stack's outputs. An output an emulator does not report is read from the
        resource of the same logical id (every output but ApiUrl is such a resource's id)."""
        stack = self.stack(name) or {}
        out = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        template = self.cfn.get_template(StackName=name).get("TemplateBody")
        wanted = _output_keys(template)
        if wanted - out.keys():
            resources = self.cfn.describe_stack_resources(StackName=name)["StackResources"]
            ids = {r.get("LogicalResourceId"): r.get("PhysicalResourceId") for r in resources}
            out.update({k: ids[k] for k in wanted - out.keys() if ids.get(k)})
        return out

    # --- artifacts ------------------------------------------------------------------------

    def artifact_bucket(self, settings: DeploySettings) -> str:
        from botocore.exceptions import ClientError

        name = settings.artifact_bucket or f"batchdrop-artifacts-{self.account()}-{self.region}"
        try:
            self.s3.head_bucket(Bucket=name)
            return name
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
                raise ConfigError(
                    f"artifact bucket {name!r}: {e}", key="deploy.artifact_bucket"
                ) from None
        args: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.s3.create_bucket(**args)
        self.s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        self.s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        self.echo(f"created artifact bucket {name}")
        return name

    def upload(self, package: Package, bucket: str, stack_name: str) -> str:
        from botocore.exceptions import ClientError

        key = f"{stack_name}/{package.sha256[:32]}.zip"
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
            self.echo(f"package already uploaded: s3://{bucket}/{key}")
        except ClientError:
            self.s3.upload_file(str(package.path), bucket, key)
            self.echo(f"uploaded {package.size / 1e6:.1f} MB to s3://{bucket}/{key}")
        return key

    # --- webhook URLs ---------------------------------------------------------------------

    def put_webhooks(self, stack_name: str, urls: list[str]) -> int:
        """Write ``urls`` to the stack's SecureString parameter (unless it already holds them);
        returns the parameter's version, which the template pins."""
        from botocore.exceptions import ClientError

        name = parameter_name(stack_name)
        value = json.dumps(urls)
        try:
            current = self.ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        except ClientError as e:
            if e.response["Error"]["Code"] != "ParameterNotFound":
                raise
            current = None
        if current is not None and current["Type"] == "SecureString" and current["Value"] == value:
            return int(current["Version"])
        args: dict[str, Any] = {
            "Name": name,
            "Value": value,
            "Type": "SecureString",
            "Description": f"webhook URLs of batchdrop stack {stack_name}",
            "Overwrite": current is not None,
        }
        if current is None:  # tags can be given only when the parameter is created
            args["Tags"] = [{"Key": "batchdrop:stack", "Value": stack_name}]
        version = int(self.ssm.put_parameter(**args)["Version"])
        self.echo(f"wrote {len(urls)} webhook URL(s) to SSM parameter {name} (version {version})")
        return version

    def delete_webhooks(self, stack_name: str) -> None:
        """Delete the stack's webhook parameter, if there is one."""
        from botocore.exceptions import ClientError

        name = parameter_name(stack_name)
        try:
            self.ssm.delete_parameter(Name=name)
        except ClientError as e:
            if e.response["Error"]["Code"] != "ParameterNotFound":
                raise
            return
        self.echo(f"deleted SSM parameter {name}")

    # --- deploy ---------------------------------------------------------------------------

    def deploy(
        self, config: Config, settings: DeploySettings, stack_name: str, package: Package
    ) -> DeployResult:
        from botocore.exceptions import ClientError

        bucket = self.artifact_bucket(settings)
        key = self.upload(package, bucket, stack_name)
        template = monitored_template(config, settings)
        body = to_yaml(template)
        current = self.stack(stack_name)
        status = current["StackStatus"] if current else None
        if status == "ROLLBACK_COMPLETE":
            raise DeployError(
                f"stack {stack_name} failed to create and was rolled back; delete "
                "it with `batchdrop destroy` and deploy again"
            )
        kind = "CREATE" if status in (None, "REVIEW_IN_PROGRESS") else "UPDATE"
        if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
            raise TransientError(
                f"stack {stack_name} is busy ({status}); try again when it is done"
            )
        parameters = {"CodeBucket": bucket, "CodeKey": key}
        urls = webhooks(config)
        if urls:  # before the stack: the function reads them when it starts
            parameters[VERSION_PARAMETER] = str(self.put_webhooks(stack_name, urls))
        # an earlier deploy's webhooks, which the function no longer reads once this one is done
        stale = not urls and _has_webhooks(current)
        name = f"batchdrop-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(2)}"
        try:
            change = self._create_change_set(stack_name, name, kind, body, parameters, settings)
        except ClientError as e:
            # some CloudFormation implementations refuse an empty update outright
            if not any(text in str(e) for text in NO_CHANGES):
                raise DeployError(f"cannot create a change set for {stack_name}: {e}") from None
            return self._unchanged(stack_name, stale, template)
        described = self._wait_change_set(change["Id"], stack_name)
        if described["Status"] == "FAILED":
            reason = described.get("StatusReason", "")
            if any(text in reason for text in NO_CHANGES):
                self.cfn.delete_change_set(ChangeSetName=change["Id"], StackName=stack_name)
                return self._unchanged(stack_name, stale, template)
            raise DeployError(f"change set for {stack_name} failed: {reason}")
        for c in described.get("Changes", []):
            rc = c.get("ResourceChange", {})
            self.echo(
                f"  {rc.get('Action', '?'):<8} {rc.get('LogicalResourceId')} "
                f"({rc.get('ResourceType')})"
            )
        seen = self._event_ids(stack_name)
        self.cfn.execute_change_set(ChangeSetName=change["Id"], StackName=stack_name)
        final = self._wait_stack(stack_name, seen)
        if final not in TERMINAL_OK:
            raise DeployError(f"stack {stack_name} ended in {final}; see the events above")
        if stale:
            self.delete_webhooks(stack_name)
        outputs = self.outputs(stack_name)
        self._check_notification(template, outputs)
        return DeployResult(stack_name, True, outputs)

    def _unchanged(self, stack_name: str, stale: bool, template: Json) -> DeployResult:
        self.echo(f"stack {stack_name} is up to date: no changes")
        if stale:
            self.delete_webhooks(stack_name)
        outputs = self.outputs(stack_name)
        self._check_notification(template, outputs)
        return DeployResult(stack_name, False, outputs)

    def _check_notification(self, template: Json, outputs: dict[str, str]) -> None:
        clients = {"s3": self.s3}
        ensure_notification(
            lambda service: clients.get(service) or self._client(service),
            template,
            outputs,
            self.echo,
        )

    def _create_change_set(
        self,
        stack_name: str,
        name: str,
        kind: str,
        body: str,
        parameters: dict[str, str],
        settings: DeploySettings,
    ) -> dict[str, Any]:
        return dict(
            self.cfn.create_change_set(
                StackName=stack_name,
                ChangeSetName=name,
                ChangeSetType=kind,
                TemplateBody=body,
                Parameters=[
                    {"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()
                ],
                Capabilities=["CAPABILITY_IAM"],
                Tags=[
                    {"Key": k, "Value": v}
                    for k, v in sorted({"batchdrop:stack": stack_name, **settings.tags}.items())
                ],
            )
        )

    def _wait_change_set(self, change_id: str, stack_name: str) -> dict[str, Any]:
        while True:
            d = self.cfn.describe_change_set(ChangeSetName=change_id, StackName=stack_name)
            if d["Status"] in ("CREATE_COMPLETE", "FAILED"):
                return dict(d)
            time.sleep(self.poll)

    def _event_ids(self, stack_name: str) -> set[str]:
        events = self.cfn.describe_stack_events(StackName=stack_name).get("StackEvents", [])
        return {ev["EventId"] for ev in events}

    def _wait_stack(self, stack_name: str, seen: set[str], stack_id: str | None = None) -> str:
        while True:
            stack = self.stack(stack_id or stack_name)
            if stack is None:
                return "DELETE_COMPLETE"
            self._show_events(stack.get("StackId", stack_name), seen)
            status = str(stack["StackStatus"])
            if not status.endswith("_IN_PROGRESS"):
                return status
            time.sleep(self.poll)

    def _show_events(self, stack_id: str, seen: set[str]) -> None:
        """Print the stack's events not seen before, oldest first."""
        events = self.cfn.describe_stack_events(StackName=stack_id).get("StackEvents", [])
        for ev in reversed(events):
            if ev["EventId"] in seen:
                continue
            seen.add(ev["EventId"])
            reason = f" — {ev['ResourceStatusReason']}" if ev.get("ResourceStatusReason") else ""
            self.echo(f"  {ev['ResourceStatus']:<20} {ev['LogicalResourceId']}{reason}")

    # --- destroy --------------------------------------------------------------------------

    def destroy(self, stack_name: str, *, force: bool = False) -> list[str]:
        """Delete the stack. Its buckets (kept by the stack's DeletionPolicy) are deleted when
        empty, or emptied and deleted with ``force``. Returns the buckets kept."""
        stack = self.stack(stack_name)
        if stack is None:
            raise ConfigError(f"there is no stack named {stack_name}", key="--stack")
        resources = self.cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
        buckets = [
            r["PhysicalResourceId"]
            for r in resources
            if r.get("ResourceType") == "AWS::S3::Bucket" and r.get("PhysicalResourceId")
        ]
        seen = self._event_ids(stack_name)
        self.cfn.delete_stack(StackName=stack_name)
        final = self._wait_stack(stack_name, seen, stack_id=stack["StackId"])
        if final != "DELETE_COMPLETE":
            raise DeployError(f"stack {stack_name} ended in {final}; see the events above")
        kept = [b for b in buckets if not self._remove_bucket(b, force)]
        if _has_webhooks(stack):
            self.delete_webhooks(stack_name)
        self.echo(f"deleted stack {stack_name}")
        for b in kept:
            self.echo(f"kept bucket {b}: it still holds files (use --force to delete them)")
        return kept

    def _remove_bucket(self, bucket: str, force: bool) -> bool:
        from botocore.exceptions import ClientError

        try:
            listing = self.s3.list_object_versions(Bucket=bucket, MaxKeys=1)
        except ClientError as e:
            if e.response["Error"]["Code"] == "NoSuchBucket":
                return True
            raise
        holds = bool(listing.get("Versions") or listing.get("DeleteMarkers"))
        if holds and not force:
            # its events would go to a queue or function that no longer exists
            self.s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={}
            )
            return False
        if holds:
            pages = self.s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
            for page in pages:
                doomed = [
                    {"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                ]
                for i in range(0, len(doomed), 1000):
                    self.s3.delete_objects(
                        Bucket=bucket, Delete={"Objects": doomed[i : i + 1000], "Quiet": True}
                    )
        self.s3.delete_bucket(Bucket=bucket)
        return True
