"""A deployed stack's outputs → the config its function runs with, for commands run elsewhere.

``batchdrop worker --stack NAME`` (and ``runs``/``get`` with ``--stack``) read the stack's
outputs (CloudFormation DescribeStacks) instead of a config written by hand: the same
locations, table, ledger and topic as the function's environment (``template.environment``),
with the schema and policies of the local batchdrop.yaml, which is what was deployed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..aws.secrets import parameter_name
from ..errors import ConfigError, TransientError
from .feeds import ENV_NAME, ENV_URL, feed_tables
from .settings import check_stack_name
from .template import VERSION_PARAMETER, s3_prefix

if TYPE_CHECKING:
    from ..config import Config

#: the outputs a config is made of, with its table (``Table``) or each feed's
NEEDED = ("InboundBucket", "ArchiveBucket", "ErrorsBucket", "LedgerTable", "Topic")


def table_outputs(config: Config) -> tuple[str, ...]:
    """The outputs naming the tables of ``config``'s stack: its one table, or each feed's."""
    tables = feed_tables(config)
    return ("Table",) if tables is None else tuple(dict.fromkeys(t.logical for t in tables))


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

    @property
    def has_queue(self) -> bool:
        """Whether the stack's trigger is the events queue (not S3 invoking the function)."""
        return bool(self.outputs.get("Queue"))

    @property
    def dead_letters(self) -> str:
        """The dead-letter queue's URL: S3 events the function gave up on (queue trigger), or
        its failed invocations (direct trigger)."""
        url = self.outputs.get("DeadLetterQueue")
        if not url:
            raise ConfigError(
                f"stack {self.name} has no output DeadLetterQueue: is it a batchdrop stack?",
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
    missing = [k for k in (*NEEDED, *table_outputs(config)) if not outputs.get(k)]
    if missing:
        raise ConfigError(
            f"stack {name} has no output {', '.join(missing)}: is it a batchdrop stack "
            "deployed from this config (with the same feeds)?",
            key="--stack",
        )
    params = {p.get("ParameterKey"): p.get("ParameterValue") for p in stack.get("Parameters", [])}
    version = params.get(VERSION_PARAMETER)
    parameter = f"{parameter_name(name)}:{version}" if version else ""
    return StackOutputs(name, outputs, parameter)


def config_from_outputs(
    config: Config, stack: StackOutputs, environ: dict[str, str] | None = None
) -> Config:
    """``config`` pointed at the stack's resources, as the function's environment points the
    bundled config: the buckets (with the config's prefixes), the table (each feed's), the
    ledger, and the topic as the only notifier (the webhook URLs are in
    ``stack.notify_parameter``). A config with feeds is read again from its file with the
    variables the function has (on top of ``environ``, by default the process's own)."""
    out = stack.outputs

    def location(bucket: str, role: str) -> str:
        return f"s3://{out[bucket]}/{s3_prefix(getattr(config, role))}"

    tables = feed_tables(config)
    if tables is not None:
        from ..config import load_config

        if not config.source or not Path(config.source).is_file():
            raise ConfigError(
                "a config with feeds is pointed at a stack from its file: load it from one",
                key="--stack",
            )
        env = {
            "BATCHDROP_INBOUND": location("InboundBucket", "inbound"),
            "BATCHDROP_ARCHIVE": location("ArchiveBucket", "archive"),
            "BATCHDROP_ERRORS": location("ErrorsBucket", "errors"),
            "BATCHDROP_LEDGER": f"dynamodb://{out['LedgerTable']}",
            "BATCHDROP_NOTIFY": json.dumps([f"sns://{out['Topic']}"]),
        }
        for t in tables:
            env[ENV_URL.format(feed=t.env_name)] = f"dynamodb://{out[t.logical]}"
            env[ENV_NAME.format(feed=t.env_name)] = out[t.logical]
        base = dict(os.environ) if environ is None else environ
        return load_config(config.source, environ={**base, **env})

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
