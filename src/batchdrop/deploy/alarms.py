"""The stack's alarms and the topic they notify; with the dashboard (``dashboard.py``), what
``add_monitoring`` adds to the template.

Each alarm watches one thing that needs a person: events given up on (the dead-letter queue),
files that failed, the function failing or throttled, a table throttling writes, events
waiting too long. Each says in its description what it means and what to do, and notifies the
alarm topic when it fires and when it clears.

The alarms have a topic of their own (``AlarmTopic``), not the receipts topic: CloudWatch can
publish only to a topic whose key lets it (an unencrypted topic, or one under a customer
managed key whose policy names ``cloudwatch.amazonaws.com``), and the receipts topic is
encrypted with the AWS managed key ``aws/sns``, whose policy no one can change — alarms sent
there would be dropped without a word. ``deploy.alarm_topic`` names an existing topic instead.

A failed file is recorded under several dimension sets (``metrics.py``). An alarm cannot
SEARCH, so the failed-files alarm sums each of those metrics by name; a metric math alarm
takes at most 10 metrics, so a config of many feeds gets several such alarms.

Everything here is derived from the config and the settings, and only added to the template
(by logical id): adding it twice changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dashboard import dashboard_body
from .metrics import (
    NAMESPACE,
    data_tables,
    dimension_sets,
    feeds_of,
    kebab,
)
from .policy import Json, getatt, ref, sub
from .resources import skip
from .settings import DeploySettings

if TYPE_CHECKING:
    from ..config import Config

#: the most metrics one metric math alarm may reference (a CloudWatch hard limit)
MAX_ALARM_METRICS = 10
ALARM_TOPIC = "AlarmTopic"
DASHBOARD = "Dashboard"


# --- alarms -------------------------------------------------------------------------------


def _alarm(
    s: DeploySettings,
    name: str,
    description: str,
    threshold: int,
    missing: str,
    topic: Json | str,
    metric: Json,
) -> Json:
    """An alarm that fires when ``metric`` is above ``threshold`` for one period, named
    ``<stack>-<name>``. ``missing``: how a period without data counts (each caller says why)."""
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": sub(f"${{AWS::StackName}}-{name}"),
            "AlarmDescription": description,
            **metric,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": missing,
            "AlarmActions": [topic],
            "OKActions": [topic],
        },
    }


def _metric(s: DeploySettings, namespace: str, name: str, stat: str, dims: list[Json]) -> Json:
    return {
        "Namespace": namespace,
        "MetricName": name,
        "Dimensions": dims,
        "Statistic": stat,
        "Period": s.alarm_thresholds.period_s,
    }


def _summed(s: DeploySettings, name: str, sets: list[list[Json]]) -> Json:
    """``name`` summed over the dimension sets ``sets``: one metric, or a metric math sum."""
    if len(sets) == 1:
        return _metric(s, NAMESPACE, name, "Sum", sets[0])
    queries: list[Json] = [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dims},
                "Period": s.alarm_thresholds.period_s,
                "Stat": "Sum",
            },
            "ReturnData": False,
        }
        for i, dims in enumerate(sets)
    ]
    ids = ",".join(q["Id"] for q in queries)
    total = {"Id": "total", "Expression": f"SUM([{ids}])", "Label": name, "ReturnData": True}
    return {"Metrics": [*queries, total]}


def alarms(config: Config, s: DeploySettings, topic: Json | str) -> dict[str, Json]:
    """The alarms of the stack, by logical id, each notifying ``topic``."""
    t = s.alarm_thresholds
    out: dict[str, Json] = {}
    dlq = [{"Name": "QueueName", "Value": getatt("DeadLetterQueue", "QueueName")}]
    fn = [{"Name": "FunctionName", "Value": ref("Function")}]
    given_up = (
        "S3 events the function gave up on"
        if s.trigger == "queue"
        else "failed invocations (S3 events the function gave up on)"
    )
    # an empty, idle queue stops reporting: no data means nothing waits there
    out["DeadLetterAlarm"] = _alarm(
        s,
        "dead-letters",
        f"batchdrop: the dead-letter queue holds {given_up}. Their files are still in the "
        "inbound bucket: see `batchdrop status --stack <stack>` and the function's log, fix "
        "the cause, then `batchdrop redrive --stack <stack>`.",
        t.dead_letter_messages,
        "notBreaching",
        topic,
        _metric(s, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", dlq),
    )
    sets = dimension_sets("FilesFailed", feeds_of(config))
    chunks = [sets[i : i + MAX_ALARM_METRICS] for i in range(0, len(sets), MAX_ALARM_METRICS)]
    for n, chunk in enumerate(chunks, start=1):
        suffix = "" if n == 1 else str(n)
        feeds = sorted({d["Value"] for dims in chunk for d in dims if d["Name"] == "Feed"})
        which = f" (feeds: {', '.join(feeds)})" if len(chunks) > 1 else ""
        # the metric is recorded only when a file fails: no data is no failure
        out[f"FailedFilesAlarm{suffix}"] = _alarm(
            s,
            f"failed-files{'-' + suffix if suffix else ''}",
            f"batchdrop: files failed{which} (throttling, a fault, a bug); each is retried, "
            f"and set aside in the errors bucket after max_attempts. `batchdrop status --stack "
            "<stack>` lists them with the reason; once the cause is fixed, `batchdrop retry "
            "RUN_ID` runs one again.",
            t.failed_files,
            "notBreaching",
            topic,
            _summed(s, "FilesFailed", chunk),
        )
    # Lambda reports these only while it is invoked: no data is an idle function
    out["FunctionErrorsAlarm"] = _alarm(
        s,
        "function-errors",
        "batchdrop: the function crashed or timed out (not a failed file, which is reported "
        "as such). Read the function's log group for the error; a timeout on big files wants "
        "a higher deploy.timeout_s or the queue worker.",
        t.function_errors,
        "notBreaching",
        topic,
        _metric(s, "AWS/Lambda", "Errors", "Sum", fn),
    )
    if not s.sequential:  # one at a time is throttling by design: the event age alarm watches
        out["FunctionThrottlesAlarm"] = _alarm(
            s,
            "function-throttles",
            "batchdrop: invocations were throttled: the account's (or the function's) "
            "concurrency is used up. Events wait and are retried; lower deploy.max_concurrency "
            "or raise the account's concurrency quota.",
            t.function_throttles,
            "notBreaching",
            topic,
            _metric(s, "AWS/Lambda", "Throttles", "Sum", fn),
        )
    for logical in [*data_tables(config), "LedgerTable"]:
        table = [{"Name": "TableName", "Value": ref(logical)}]
        what = "the run ledger" if logical == "LedgerTable" else f"table {logical}"
        # DynamoDB reports throttle events only when there are some
        out[f"ThrottledWrites{logical}Alarm"] = _alarm(
            s,
            f"throttled-writes-{kebab(logical)}",
            f"batchdrop: DynamoDB throttled writes to {what}. Loads retry with backoff and "
            "slow down; if files fail, raise the table's write capacity (deploy.billing, "
            "write_capacity), or cap aws.max_write_units_per_s and shards.max_in_flight.",
            t.throttled_writes,
            "notBreaching",
            topic,
            _metric(s, "AWS/DynamoDB", "WriteThrottleEvents", "Sum", table),
        )
    if s.trigger == "queue":
        queue = [{"Name": "QueueName", "Value": getatt("Queue", "QueueName")}]
        metric = _metric(s, "AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", queue)
        where = "in the events queue"
    else:  # S3 invokes the function asynchronously: Lambda's own queue of events
        metric = _metric(s, "AWS/Lambda", "AsyncEventAge", "Maximum", fn)
        where = "in the function's queue of asynchronous events"
    # an empty, idle queue stops reporting: no data means nothing waits
    out["OldestEventAlarm"] = _alarm(
        s,
        "oldest-event",
        f"batchdrop: an event has waited {where} for over {t.oldest_event_age_s} s: files "
        "arrive faster than they load, or one keeps failing. See `batchdrop status --stack "
        "<stack>`; raise deploy.max_concurrency, or run `batchdrop worker --stack <stack>`.",
        t.oldest_event_age_s,
        "notBreaching",
        topic,
        metric,
    )
    return out


def alarm_topic(s: DeploySettings) -> tuple[dict[str, Json], Json | str]:
    """The topic the alarms notify, with the resources it needs: the stack's own, or the
    existing topic ``deploy.alarm_topic`` names."""
    if s.alarm_topic:
        return {}, s.alarm_topic
    props: Json = {"DisplayName": "batchdrop alarms"}
    if s.alarm_email:  # the topic's own subscription: made, changed and removed with it
        props["Subscription"] = [{"Protocol": "email", "Endpoint": s.alarm_email}]
    topic = skip(
        {"Type": "AWS::SNS::Topic", "Properties": props},
        (
            "CKV_AWS_26",
            "CloudWatch cannot publish to a topic under the AWS managed key aws/sns, and "
            "alarm messages hold alarm names and figures, no data: set deploy.alarm_topic "
            "to a topic of yours under a customer managed key to keep them encrypted",
        ),
    )
    return {ALARM_TOPIC: topic}, ref(ALARM_TOPIC)


def alarm_names(template: Json) -> list[str]:
    """The alarms' names less the stack's (``<stack>-<this>``), in the template's order."""
    out = []
    for res in template["Resources"].values():
        if res["Type"] == "AWS::CloudWatch::Alarm":
            name = res["Properties"]["AlarmName"]["Fn::Sub"]
            out.append(name.removeprefix("${AWS::StackName}-"))
    return out


# --- into the template ----------------------------------------------------------------------


def add_monitoring(template: Json, config: Config, settings: DeploySettings) -> Json:
    """``template`` with the alarms, their topic and the dashboard (as ``settings`` asks),
    and the outputs ``AlarmTopic`` and ``DashboardUrl``."""
    res, outputs = template["Resources"], template["Outputs"]
    names: list[str] = []
    if settings.alarms:
        topic_res, topic = alarm_topic(settings)
        made = alarms(config, settings, topic)
        res.update(topic_res)
        res.update(made)
        names = alarm_names({"Resources": made})
        outputs["AlarmTopic"] = {"Value": topic}
    if settings.dashboard:
        res[DASHBOARD] = {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {
                "DashboardName": sub("${AWS::StackName}"),
                "DashboardBody": sub(dashboard_body(config, settings, names)),
            },
        }
        outputs["DashboardUrl"] = {
            "Value": sub(
                "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home"
                "?region=${AWS::Region}#dashboards/dashboard/${Dashboard}"
            )
        }
    return template


def monitored_template(config: Config, settings: DeploySettings) -> Json:
    """The stack's whole template (``template.build_template`` adds the monitoring itself)."""
    from .template import build_template

    return build_template(config, settings)
