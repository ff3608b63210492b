"""Webhook URLs on AWS: kept in an SSM SecureString parameter, read once when the runtime starts.

A webhook URL is itself a credential, so it stays out of the function's environment, its code
package and the template. ``batchdrop deploy`` writes the config's webhooks, as a JSON list, to
the SecureString parameter ``/batchdrop/<stack>/notify`` (encrypted with the account's
``aws/ssm`` key, whose key policy lets the account's principals decrypt through SSM: the role
needs ``ssm:GetParameter`` on that one parameter and no KMS permission). The function's
environment names the parameter, pinned to the version the deploy wrote
(``BATCHDROP_NOTIFY_PARAMETER=/batchdrop/<stack>/notify:3``), so a changed URL reaches every new
execution environment with the stack update that comes with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING

from ..errors import ConfigError, TransientError

if TYPE_CHECKING:
    from ..config import Config

#: the environment variable naming the parameter (with its version: ``NAME:VERSION``)
PARAMETER_VARIABLE = "BATCHDROP_NOTIFY_PARAMETER"
#: the parameter of a stack; CloudFormation's ``${AWS::StackName}`` fits in the same place
PARAMETER_NAME = "/batchdrop/{stack}/notify"
WEBHOOK_SCHEMES = ("https://", "http://")


def parameter_name(stack: str) -> str:
    return PARAMETER_NAME.format(stack=stack)


def webhooks(config: Config) -> list[str]:
    """The webhook URLs among the config's notifiers."""
    return [t for t in config.notify if t.startswith(WEBHOOK_SCHEMES)]


def take_parameter_name(environ: MutableMapping[str, str]) -> str:
    """Remove the parameter's name from ``environ`` and return it ("" when there is none).

    The config loader turns every ``BATCHDROP_*`` variable into a setting, and this one is not
    a setting of batchdrop.yaml: it says where some of ``notify`` is kept.
    """
    return environ.pop(PARAMETER_VARIABLE, "").strip()


def read_webhooks(name: str, config: Config | None = None) -> list[str]:
    """The webhook URLs held by SSM parameter ``name`` (``NAME`` or ``NAME:VERSION``)."""
    from .clients import client, error_code, is_transient

    try:
        reply = client("ssm", config).get_parameter(Name=name, WithDecryption=True)
    except Exception as e:
        code = error_code(e)
        if is_transient(e) or not code:
            raise TransientError(
                f"SSM did not answer for parameter {name} ({code or type(e).__name__})"
            ) from None
        raise ConfigError(
            f"cannot read the webhook URLs from SSM parameter {name} ({code}): deploy the "
            "stack again (it writes the parameter), or check that the role may "
            "ssm:GetParameter on it",
            key=PARAMETER_VARIABLE,
        ) from None
    try:
        urls = json.loads(reply["Parameter"]["Value"])
    except ValueError:
        urls = None
    if not isinstance(urls, list) or not all(
        isinstance(u, str) and u.startswith(WEBHOOK_SCHEMES) for u in urls
    ):
        # the value is never shown: it may be a credential however malformed
        raise ConfigError(
            f"SSM parameter {name} must hold a JSON list of https:// webhook URLs",
            key=PARAMETER_VARIABLE,
        )
    return urls


def add_webhooks(config: Config, name: str) -> Config:
    """``config`` notifying the webhooks kept in parameter ``name`` as well."""
    config.notify = [
        *config.notify,
        *(u for u in read_webhooks(name, config) if u not in config.notify),
    ]
    return config


def load_runtime_config(environ: Mapping[str, str] | None = None) -> Config:
    """The config the Lambda runs with: the bundled file (``$BATCHDROP_CONFIG``), the
    ``BATCHDROP_*`` overrides, and the webhooks kept in the parameter the environment names."""
    from ..config import load_config

    env = dict(os.environ if environ is None else environ)
    name = take_parameter_name(env)
    config = load_config(environ=env)
    return add_webhooks(config, name) if name else config
