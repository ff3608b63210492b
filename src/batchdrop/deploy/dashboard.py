"""The stack's CloudWatch dashboard: the loads' embedded metrics (files by status, rows,
duration, throughput) beside the queues', the function's and the tables' own, and the alarms.

The body is JSON for Fn::Sub: ``${…}`` names the stack's resources and pseudo parameters.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .metrics import FILE_METRICS, NAMESPACE, NO_FEED, data_tables, dimension_sets, feeds_of, kebab
from .policy import Json
from .settings import DeploySettings

if TYPE_CHECKING:
    from ..config import Config


def _line(namespace: str, name: str, dims: list[Json], **options: Any) -> list[Any]:
    """One metric of a dashboard widget: ``[namespace, name, dim, value, …, {options}]``."""
    line: list[Any] = [namespace, name]
    for d in dims:
        line += [d["Name"], d["Value"]]
    return [*line, options] if options else line


class _Ids:
    """Metric ids unique within one widget (a metric math expression names them)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"m{self.n}"


def _emf_total(name: str, feeds: list[str] | None, ids: _Ids, label: str, stat: str) -> list[Any]:
    """The embedded metric ``name`` over every feed: itself, or a sum of its feeds' lines."""
    sets = dimension_sets(name, feeds)
    if len(sets) == 1:
        return [_line(NAMESPACE, name, sets[0], stat=stat, label=label)]
    hidden = [_line(NAMESPACE, name, d, stat=stat, id=ids(), visible=False) for d in sets]
    names = ",".join(h[-1]["id"] for h in hidden)
    return [*hidden, [{"expression": f"SUM([{names}])", "label": label, "id": ids()}]]


def _per_feed(name: str, feeds: list[str] | None, stat: str, label: str) -> list[Any]:
    """The embedded metric ``name``, one line per feed."""
    if feeds is None:
        return [_line(NAMESPACE, name, dimension_sets(name, None)[0], stat=stat, label=label)]
    return [
        _line(NAMESPACE, name, d, stat=stat, label=f"{label} ({d[1]['Value']})")
        for d in dimension_sets(name, [f for f in feeds if f != NO_FEED])
        if len(d) > 1
    ]


def _widget(title: str, metrics: list[Any], **props: Any) -> Json:
    return {
        "type": "metric",
        "width": 8,
        "height": 6,
        "properties": {
            "title": title,
            "region": "${AWS::Region}",
            "view": "timeSeries",
            "period": 300,
            "metrics": metrics,
            **props,
        },
    }


def dashboard_body(config: Config, s: DeploySettings, alarm_names: list[str]) -> str:
    """The dashboard's JSON, for Fn::Sub: the loads' embedded metrics, then the queue's, the
    function's and the tables' (``${…}`` names the stack's resources)."""
    feeds = feeds_of(config)
    ids = _Ids()
    status = [
        m
        for name in FILE_METRICS
        for m in _emf_total(name, feeds, ids, name.removeprefix("Files"), "Sum")
    ]
    rates = _Ids()
    throughput = [
        *_rate("RowsLoaded", feeds, rates, "rows loaded a second"),
        *_rate("FileBytes", feeds, rates, "MB read a second", divisor=1000000, yAxis="right"),
    ]
    tables = [*data_tables(config), "LedgerTable"]
    widgets: list[Json] = [
        _widget("Files by status", status, stat="Sum"),
        _widget(
            "Rows",
            [
                *_per_feed("RowsLoaded", feeds, "Sum", "loaded"),
                *_per_feed("RowsRejected", feeds, "Sum", "rejected"),
            ],
        ),
        _widget(
            "Duration per file (s)",
            [
                *_per_feed("Duration", feeds, "Average", "average"),
                *_per_feed("Duration", feeds, "Maximum", "longest"),
            ],
        ),
        _widget("Throughput (rows loaded a second)", throughput),
    ]
    if s.trigger == "queue":
        widgets.append(
            _widget(
                "Events queue",
                [
                    _sqs("ApproximateNumberOfMessagesVisible", "Queue", "waiting"),
                    _sqs("ApproximateNumberOfMessagesNotVisible", "Queue", "in flight"),
                    _sqs(
                        "ApproximateAgeOfOldestMessage", "Queue", "age of oldest (s)", yAxis="right"
                    ),
                ],
            )
        )
    else:
        widgets.append(
            _widget(
                "Asynchronous events",
                [
                    _fn("AsyncEventsReceived", "Sum", "received"),
                    _fn("AsyncEventAge", "Maximum", "age of oldest (ms)", yAxis="right"),
                ],
            )
        )
    widgets += [
        _widget(
            "Dead-letter queue",
            [_sqs("ApproximateNumberOfMessagesVisible", "DeadLetterQueue", "messages")],
        ),
        _widget(
            "Function",
            [
                _fn("Invocations", "Sum", "invocations"),
                _fn("Errors", "Sum", "errors"),
                _fn("Throttles", "Sum", "throttles"),
            ],
        ),
        _widget(
            "Consumed write units",
            [_table("ConsumedWriteCapacityUnits", t) for t in tables],
            stat="Sum",
        ),
        _widget("Throttled writes", [_table("WriteThrottleEvents", t) for t in tables], stat="Sum"),
    ]
    for i, w in enumerate(widgets):
        w["x"], w["y"] = (i % 3) * 8, (i // 3) * 6 + (3 if alarm_names else 0)
    if alarm_names:
        arn = "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:"
        widgets.insert(
            0,
            {
                "type": "alarm",
                "x": 0,
                "y": 0,
                "width": 24,
                "height": 3,
                "properties": {
                    "title": "Alarms",
                    "alarms": [f"{arn}${{AWS::StackName}}-{n}" for n in alarm_names],
                },
            },
        )
    return json.dumps({"widgets": widgets}, separators=(",", ":"))


def _rate(
    name: str, feeds: list[str] | None, ids: _Ids, label: str, divisor: int = 1, **options: Any
) -> list[Any]:
    """The embedded metric ``name`` over every feed, a second (its sum over the period)."""
    hidden = [
        _line(NAMESPACE, name, d, stat="Sum", id=ids(), visible=False)
        for d in dimension_sets(name, feeds)
    ]
    first = hidden[0][-1]["id"]
    total = first if len(hidden) == 1 else f"SUM([{','.join(h[-1]['id'] for h in hidden)}])"
    per = f"PERIOD({first})" if divisor == 1 else f"PERIOD({first})/{divisor}"
    rate = {"expression": f"{total}/{per}", "label": label, "id": ids()}
    return [*hidden, [{**rate, **options}]]


def _sqs(name: str, queue: str, label: str, **options: Any) -> list[Any]:
    dims = [{"Name": "QueueName", "Value": f"${{{queue}.QueueName}}"}]
    return _line("AWS/SQS", name, dims, stat="Maximum", label=label, **options)


def _fn(name: str, stat: str, label: str, **options: Any) -> list[Any]:
    dims = [{"Name": "FunctionName", "Value": "${Function}"}]
    return _line("AWS/Lambda", name, dims, stat=stat, label=label, **options)


def _table(name: str, logical: str) -> list[Any]:
    dims = [{"Name": "TableName", "Value": f"${{{logical}}}"}]
    return _line("AWS/DynamoDB", name, dims, label=kebab(logical))
