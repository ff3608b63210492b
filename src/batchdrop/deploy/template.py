"""batchdrop.yaml → a CloudFormation template (a dict, or YAML for people to review).

S3 (inbound, archive, errors) → SQS → Lambda (or S3 → Lambda directly) → DynamoDB + SNS, with a
dead-letter queue, a log group, and a role holding only what the runtime calls.

The inbound bucket's name is built from the stack name, account and region rather than
generated, so the queue policy (or the invoke permission) can name the bucket's ARN while the
bucket's notification depends on that policy: one deploy, no circular dependency.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import yaml

from ..aws.secrets import PARAMETER_NAME, PARAMETER_VARIABLE, webhooks
from ..errors import ConfigError
from ..tables.dynamodb_modes import keeps_state
from . import resources as r
from .alarms import add_monitoring
from .api import api_resources
from .feeds import FeedTable, by_table, check_environment, feed_tables, grants, suffixes
from .feeds import environment as feeds_environment
from .policy import SINGLE_TABLE, Json, TableGrant, getatt, loader_statements, ref, role, sub
from .settings import DeploySettings

if TYPE_CHECKING:
    from ..config import Config

HANDLER = "batchdrop.aws.handler.handler"
RUNTIME = "python3.12"
CONFIG_PATH = "/var/task/batchdrop.yaml"
#: the template parameter carrying the version of the webhook URLs' SSM parameter
VERSION_PARAMETER = "NotifyParameterVersion"


def s3_prefix(url: str) -> str:
    """The key prefix of an ``s3://bucket/prefix/`` location ('' for a local path)."""
    if not url.startswith("s3://"):
        return ""
    _, _, prefix = url.removeprefix("s3://").partition("/")
    return prefix


def key_attributes(config: Config) -> list[tuple[str, str, str]]:
    """(attribute, type, HASH or RANGE) of the table's key: a composite key is one text
    attribute holding its columns' values joined by the separator."""
    table = config.table
    out = []
    for attr, columns, kind in zip(
        table.physical_key,
        (table.partition_columns, table.sort_columns),
        ("HASH", "RANGE"),
        strict=True,
    ):
        if attr is None:
            continue
        if len(columns) > 1:
            out.append((attr, "S", kind))
        else:
            out.append((attr, key_attribute_type(config, attr), kind))
    return out


def key_attribute_type(config: Config, name: str) -> str:
    kind = config.schema_.field(name).type
    if kind in ("integer", "number"):
        return "N"
    if kind == "boolean":
        raise ConfigError(
            f"field {name!r} is a boolean, which DynamoDB cannot use as a key",
            key="table",
            source=config.source,
        )
    return "S"  # string, date and datetime keys are stored as their ISO text


def shared_key(group: list[FeedTable], source: str | None) -> list[tuple[str, str, str]]:
    """The key of a table the feeds of ``group`` load into: the same for each of them."""
    first, keys = group[0], key_attributes(group[0].config)
    for other in group[1:]:
        if key_attributes(other.config) != keys:
            raise ConfigError(
                f"feed {other.feed!r} loads into the table of feed {first.feed!r} "
                f"({first.config.table.table_name}) with another key: give both the same "
                "key, or each its own table",
                key=f"{other.at}.table",
                source=source,
            )
    return keys


def build_template(config: Config, settings: DeploySettings) -> Json:
    s = settings
    # with feeds: a table per feed, or per table the feeds name (the one function routes each
    # file to its feed)
    feeds = feed_tables(config)
    table_grants = SINGLE_TABLE if feeds is None else grants(feeds)
    loader_grants = table_grants
    if feeds is None and (config.only_if_newer is not None or keeps_state(config)):
        loader_grants = (
            TableGrant("Table", config.only_if_newer is not None, keeps_state(config)),
        )
    prefixes = {
        role_: s3_prefix(getattr(config, role_)) for role_ in ("inbound", "archive", "errors")
    }
    res: dict[str, Json] = {}
    buckets: dict[str, Json | str] = {}
    for role_, logical in (
        ("inbound", "InboundBucket"),
        ("archive", "ArchiveBucket"),
        ("errors", "ErrorsBucket"),
    ):
        existing = getattr(s, f"{role_}_bucket")
        if existing:
            buckets[role_] = existing
            continue
        name = (
            sub("${AWS::StackName}-inbound-${AWS::AccountId}-${AWS::Region}")
            if role_ == "inbound"
            else None
        )
        res[logical] = r.bucket(
            s, name=name, errors_prefix=prefixes["errors"] if role_ == "errors" else None
        )
        res[f"{logical}Policy"] = r.tls_only_policy(logical)
        buckets[role_] = name if name else ref(logical)
    if not s.inbound_bucket:
        trigger_target = "Queue" if s.trigger == "queue" else "Function"
        res["InboundBucket"]["Properties"]["NotificationConfiguration"] = r.notification(
            s.trigger, getatt(trigger_target, "Arn"), prefixes["inbound"], *suffixes(config)
        )
        res["InboundBucket"]["DependsOn"] = [
            "QueuePolicy" if s.trigger == "queue" else "InvokePermission"
        ]
    inbound_arn = {"Fn::Join": ["", ["arn:", ref("AWS::Partition"), ":s3:::", buckets["inbound"]]]}

    res["DeadLetterQueue"] = r.queue(1209600)
    if s.trigger == "queue":
        res["Queue"] = r.queue(
            4 * 86400,
            visibility=min(6 * s.timeout_s, 43200),
            redrive={
                "deadLetterTargetArn": getatt("DeadLetterQueue", "Arn"),
                "maxReceiveCount": s.max_receive_count,
            },
        )
        res["QueuePolicy"] = r.queue_policy(inbound_arn)
        res["EventSourceMapping"] = r.event_source_mapping(
            s, s.max_concurrency or max(2, config.shards.max_in_flight)
        )
    else:
        res["InvokePermission"] = r.invoke_permission(inbound_arn)
        res["EventInvokeConfig"] = r.event_invoke_config()

    if feeds is None:
        res["Table"] = r.table(s, key_attributes(config))
    else:
        for logical, group in by_table(feeds).items():
            res[logical] = r.table(s, shared_key(group, config.source))
    res["LedgerTable"] = r.ledger_table(s)
    res["Topic"] = {
        "Type": "AWS::SNS::Topic",
        "Properties": {
            "KmsMasterKeyId": sub(
                "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:alias/aws/sns"
            )
        },
    }
    if s.email:
        res["EmailSubscription"] = {
            "Type": "AWS::SNS::Subscription",
            "Properties": {"TopicArn": ref("Topic"), "Protocol": "email", "Endpoint": s.email},
        }

    res["LogGroup"] = r.log_group(s)
    res["Role"] = role(
        "lambda.amazonaws.com",
        "batchdrop-loader",
        loader_statements(
            s,
            inbound=buckets["inbound"],
            inbound_prefix=prefixes["inbound"],
            archive=buckets["archive"],
            errors=buckets["errors"],
            errors_prefix=prefixes["errors"],
            webhooks=bool(webhooks(config)),
            tables=loader_grants,
        ),
    )
    env = environment(config, buckets, prefixes, feeds)
    if feeds is not None:
        check_environment(env, feeds, config.source)
    res["Function"] = r.loader_function(s, HANDLER, env)
    tables = (
        {"Table": ref("Table")} if feeds is None else {t.logical: ref(t.logical) for t in feeds}
    )
    outputs = {
        "InboundBucket": buckets["inbound"],
        "ArchiveBucket": buckets["archive"],
        "ErrorsBucket": buckets["errors"],
        **tables,
        "LedgerTable": ref("LedgerTable"),
        "Topic": ref("Topic"),
        "DeadLetterQueue": ref("DeadLetterQueue"),
        "Function": ref("Function"),
        "LogGroup": ref("LogGroup"),
    }
    if s.trigger == "queue":
        outputs["Queue"] = ref("Queue")
    if s.api:
        # the API notifies no one: it is not told where the webhook URLs are
        api_env = {k: v for k, v in env.items() if k != PARAMETER_VARIABLE}
        reports = (buckets["errors"], prefixes["errors"])
        api_res, api_out = api_resources(s, api_env, table_grants, reports)
        res.update(api_res)
        outputs.update(api_out)
    parameters: Json = {
        "CodeBucket": {"Type": "String", "Description": "S3 bucket of the Lambda package"},
        "CodeKey": {"Type": "String", "Description": "S3 key of the Lambda package"},
    }
    if webhooks(config):
        parameters[VERSION_PARAMETER] = {
            "Type": "String",
            "AllowedPattern": "[0-9]+",
            "Description": "Version of the SSM parameter holding the webhook URLs "
            "(written by batchdrop deploy)",
        }
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description(config, feeds, s.trigger),
        "Parameters": parameters,
        "Resources": res,
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    # the alarms, their topic and the dashboard (alarms.py)
    return add_monitoring(template, config, s)


def description(config: Config, feeds: list[FeedTable] | None, trigger: str) -> str:
    if feeds is None:
        return f"batchdrop: CSV files into {config.table.table_name} ({trigger} trigger)"
    return f"batchdrop: CSV files of {len(feeds)} feeds, each into its table ({trigger} trigger)"


def environment(
    config: Config,
    buckets: dict[str, Json | str],
    prefixes: dict[str, str],
    feeds: list[FeedTable] | None = None,
) -> Json:
    """BATCHDROP_* variables pointing the bundled config at the stack's resources (each feed's
    table by the feed's name). Resource names only: the config's webhook URLs are kept in an
    SSM SecureString parameter."""

    def location(role_: str) -> Json:
        return {"Fn::Join": ["", ["s3://", buckets[role_], "/" + prefixes[role_]]]}

    out: Json = {
        "BATCHDROP_CONFIG": CONFIG_PATH,
        "BATCHDROP_INBOUND": location("inbound"),
        "BATCHDROP_ARCHIVE": location("archive"),
        "BATCHDROP_ERRORS": location("errors"),
        **(
            {
                "BATCHDROP_TABLE__URL": sub("dynamodb://${Table}"),
                "BATCHDROP_TABLE__NAME": ref("Table"),
            }
            if feeds is None
            else feeds_environment(feeds)
        ),
        "BATCHDROP_LEDGER": sub("dynamodb://${LedgerTable}"),
        "BATCHDROP_NOTIFY": sub('["sns://${Topic}"]'),
        "POWERTOOLS_SERVICE_NAME": "batchdrop",
    }
    if webhooks(config):
        # the URLs are credentials: the environment names where they are kept, pinned to the
        # version this deploy wrote, so a changed URL comes with a stack update
        name = PARAMETER_NAME.format(stack="${AWS::StackName}")
        out[PARAMETER_VARIABLE] = sub(f"{name}:${{{VERSION_PARAMETER}}}")
    return out


class _Dumper(yaml.SafeDumper):
    """No anchors or aliases: CloudFormation rejects them."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def to_yaml(template: Json) -> str:
    return yaml.dump(template, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def to_json(template: Json) -> str:
    return json.dumps(template, indent=1, sort_keys=True)


def render(config: Config, settings: DeploySettings | None = None) -> str:
    from .settings import deploy_settings

    return to_yaml(build_template(config, settings or deploy_settings(config)))


def statements(template: Json) -> list[tuple[str, Json]]:
    """Every IAM statement of every role in ``template``, with the role's logical id."""
    out: list[tuple[str, Json]] = []
    for logical, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                out += [(logical, st) for st in policy["PolicyDocument"]["Statement"]]
    return out
