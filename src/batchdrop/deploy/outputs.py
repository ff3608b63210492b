"""A deployed stack's outputs → the config its function runs with, for commands run elsewhere.

``batchdrop worker --stack NAME`` (and ``runs``/``get`` with ``--stack``) read the stack's
outputs (CloudFormation DescribeStacks) instead of a config written by hand: the same
locations, table, ledger and topic as the function's environment (``template.environment``),
with the schema and policies of the local batchdrop.yaml, which is what was deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..aws.secrets import parameter_name
from ..errors import ConfigError, TransientError
from .settings import check_stack_name
from .template import VERSION_PARAMETER, s3_prefix

if TYPE_CHECKING:
    from ..config import Config

#: the outputs a config is made of
NEEDED = ("InboundBucket", "ArchiveBucket", "ErrorsBucket", "Table", "LedgerTable", "Topic")


@dataclass(frozen=True)
class StackOutputs:
    name: str
    outputs: dict[str, str]
    #: ``/batchdrop/<stack>/notify:<version>`` when the stack was deployed with webhooks
    notify_parameter: str = ""

    @property
    def queue(self) -> str:
        """The events queue's URL; a stack with the direct trigger has none."""
        url = self.outputs.get("Queue")
        if not url:
            raise ConfigError(
                f"stack {self.name} has no queue (its trigger is direct): the worker reads "
                "the queue of a stack deployed with deploy.trigger: queue",
                key="--stack",
            )
        return url


def read_stack(config: Config, name: str, *, session: object = None) -> StackOutputs:
    """The outputs of stack ``name``, as the deploy commands reach it (``aws`` settings,
    ``AWS_ENDPOINT_URL``). A missing stack or output is a ConfigError."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..aws.clients import is_transient
    from .stack import StackClient

    name = check_stack_name(name)
    try:
        client = StackClient(config, session=session, echo=lambda _: None)
        stack = client.stack(name)
        if stack is None:
            raise ConfigError(f"there is no stack named {name}", key="--stack")
        outputs = client.outputs(name)
    except (BotoCoreError, ClientError) as e:
        if is_transient(e):
            raise TransientError(f"cannot read stack {name}: {e}") from None
        raise ConfigError(f"cannot read stack {name}: {e}", key="--stack") from None
    missing = [k for k in NEEDED if not outputs.get(k)]
    if missing:
        raise ConfigError(
            f"stack {name} has no output {', '.join(missing)}: is it a batchdrop stack?",
            key="--stack",
        )
    params = {p.get("ParameterKey"): p.get("ParameterValue") for p in stack.get("Parameters", [])}
    version = params.get(VERSION_PARAMETER)
    parameter = f"{parameter_name(name)}:{version}" if version else ""
    return StackOutputs(name, outputs, parameter)


def config_from_outputs(config: Config, stack: StackOutputs) -> Config:
    """``config`` pointed at the stack's resources, as the function's environment points the
    bundled config: the buckets (with the config's prefixes), the table, the ledger, and the
    topic as the only notifier (the webhook URLs are in ``stack.notify_parameter``)."""
    out = stack.outputs

    def location(bucket: str, role: str) -> str:
        return f"s3://{out[bucket]}/{s3_prefix(getattr(config, role))}"

    return config.model_copy(
        update={
            "inbound": location("InboundBucket", "inbound"),
            "archive": location("ArchiveBucket", "archive"),
            "errors": location("ErrorsBucket", "errors"),
            "table": config.table.model_copy(
                update={"url": f"dynamodb://{out['Table']}", "name": out["Table"]}
            ),
            "ledger": f"dynamodb://{out['LedgerTable']}",
            "notify": [f"sns://{out['Topic']}"],
        }
    )


def stack_config(config: Config, name: str) -> Config:
    """``config`` pointed at the resources of the deployed stack ``name`` (for ``runs`` and
    ``get``, which read the table and the ledger)."""
    return config_from_outputs(config, read_stack(config, name))
