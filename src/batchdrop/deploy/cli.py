"""``batchdrop template | package | deploy | destroy``: plain click commands the CLI registers."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from .settings import check_stack_name, deploy_settings

STACK_HELP = "Stack name (default: deploy.stack_name, or batchdrop-<table>)."


def _config(ctx: click.Context) -> Any:
    return ctx.obj.config()


@contextlib.contextmanager
def _aws_errors(what: str) -> Iterator[None]:
    """AWS's refusals (no credentials, access denied, a bad template) as one clear line."""
    from botocore.exceptions import BotoCoreError, ClientError

    from .stack import DeployError

    try:
        yield
    except (BotoCoreError, ClientError) as e:
        raise DeployError(f"{what}: {e}") from e


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@click.pass_context
def template(ctx: click.Context, as_json: bool) -> None:
    """Print the CloudFormation template built from the config."""
    from .alarms import monitored_template
    from .template import to_json, to_yaml

    config = _config(ctx)
    built = monitored_template(config, deploy_settings(config))
    click.echo(to_json(built) if as_json else to_yaml(built), nl=False)


@click.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("dist/batchdrop-lambda.zip"),
    show_default=True,
    help="Where to write the zip.",
)
@click.option(
    "--architecture", type=click.Choice(["arm64", "x86_64"]), help="Override deploy.architecture."
)
@click.option(
    "--without-dependencies",
    is_flag=True,
    help="batchdrop and the config only: for emulators, which never run the code.",
)
@click.pass_context
def package(
    ctx: click.Context, output: Path, architecture: str | None, without_dependencies: bool
) -> None:
    """Build the Lambda deployment zip and print its size."""
    from .package import build_package

    config = _config(ctx)
    settings = deploy_settings(config, architecture=architecture)
    built = build_package(config, settings, output, with_dependencies=not without_dependencies)
    click.echo(built.describe())


@click.command()
@click.option("--stack", "stack_name", help=STACK_HELP)
@click.option("--email", help="Subscribe this address to the receipts topic.")
@click.option(
    "--alarm-email",
    metavar="ADDRESS",
    help="Subscribe this address to the alarms' topic (AWS sends a confirmation email first).",
)
@click.option(
    "--package",
    "package_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Deploy this zip (from `batchdrop package`) instead of building one.",
)
@click.pass_context
def deploy(
    ctx: click.Context,
    stack_name: str | None,
    email: str | None,
    alarm_email: str | None,
    package_path: Path | None,
) -> None:
    """Create or update the stack through a change set, wait, and print its outputs.

    The stack has alarms (deploy.alarms, on by default) that notify a topic of their own
    (AlarmTopic; --alarm-email subscribes an address to it), and a CloudWatch dashboard
    (DashboardUrl in the outputs).

    The inbound bucket's notification is then checked: an emulator that leaves it out of a
    stack gets it applied (and says so).
    """
    import hashlib

    from .package import Package, build_package
    from .stack import StackClient

    config = _config(ctx)
    settings = deploy_settings(config, email=email, alarm_email=alarm_email)
    name = check_stack_name(stack_name) if stack_name else settings.resolved_stack_name(config)
    with (
        tempfile.TemporaryDirectory(prefix="batchdrop-deploy-") as tmp,
        _aws_errors(f"cannot deploy stack {name}"),
    ):
        client = StackClient(config, echo=click.echo)
        if package_path is None:
            built = build_package(config, settings, Path(tmp) / "batchdrop-lambda.zip")
            click.echo(built.describe())
        else:
            data = package_path.read_bytes()
            built = Package(package_path, len(data), 0, hashlib.sha256(data).hexdigest(), 0)
        result = client.deploy(config, settings, name, built)
    if settings.inbound_bucket:
        click.echo(
            f"note: {settings.inbound_bucket} is not managed by the stack; point its "
            "ObjectCreated notifications at the stack's queue (see the README)"
        )
    for key, value in sorted(result.outputs.items()):
        click.echo(f"{key:<16} {value}")


@click.command()
@click.option("--stack", "stack_name", help=STACK_HELP)
@click.option("--force", is_flag=True, help="Also delete buckets that still hold files.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def destroy(ctx: click.Context, stack_name: str | None, force: bool, yes: bool) -> None:
    """Delete the stack; buckets that still hold files are kept unless --force.

    Asks first (unless --yes); answering no exits 1 with nothing destroyed.
    """
    from .stack import StackClient

    config = _config(ctx)
    settings = deploy_settings(config)
    name = check_stack_name(stack_name) if stack_name else settings.resolved_stack_name(config)
    what = "and every file in its buckets" if force else "(buckets holding files are kept)"
    if not yes and not click.confirm(f"Delete stack {name} {what}?"):
        click.echo(f"batchdrop: nothing destroyed: stack {name} is still there", err=True)
        sys.exit(1)
    with _aws_errors(f"cannot delete stack {name}"):
        StackClient(config, echo=click.echo).destroy(name, force=force)


commands = [template, package, deploy, destroy]
