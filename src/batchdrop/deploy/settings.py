"""``deploy:`` in batchdrop.yaml → ``DeploySettings``, validated like the rest of the config."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Config

#: The values CloudWatch Logs accepts for a log group's retention.
RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
#: The inbound bucket is named "<stack>-inbound-<account>-<region>" (the name must be known before
#: the bucket exists, to scope the queue policy or invoke permission to it without a cycle);
#: bucket names stop at 63 characters, and the longest region name has 14.
MAX_STACK_NAME = 63 - len("-inbound-") - 12 - 1 - 14
STACK_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
TOPIC_ARN_RE = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$")


class AlarmThresholds(BaseModel):
    """Each alarm fires when its figure, over one period, is above its threshold."""

    model_config = ConfigDict(extra="forbid")

    #: messages waiting in the dead-letter queue (its maximum over a period)
    dead_letter_messages: int = Field(0, ge=0)
    #: files whose run failed (the FilesFailed metric, summed over a period)
    failed_files: int = Field(0, ge=0)
    #: the function's errors and throttles (summed over a period)
    function_errors: int = Field(0, ge=0)
    function_throttles: int = Field(0, ge=0)
    #: write requests DynamoDB throttled, per table (summed over a period)
    throttled_writes: int = Field(0, ge=0)
    #: seconds the oldest event has waited (the queue's, or the function's asynchronous events)
    oldest_event_age_s: int = Field(3600, ge=60)
    #: the period each alarm looks at, in seconds (CloudWatch's standard metrics: 60 or more)
    period_s: int = Field(300, ge=60, le=86400)

    @field_validator("period_s")
    @classmethod
    def _period(cls, v: int) -> int:
        if v % 60:
            raise ValueError("must be a multiple of 60")
        return v


class DeploySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stack_name: str | None = None
    trigger: Literal["queue", "direct"] = "queue"
    memory_mb: int = Field(1024, ge=128, le=10240)
    timeout_s: int = Field(300, ge=10, le=900)
    architecture: Literal["arm64", "x86_64"] = "arm64"
    sequential: bool = False
    log_retention_days: int = 30
    billing: Literal["on_demand", "provisioned"] = "on_demand"
    read_capacity: int = Field(5, ge=1, le=40000)
    write_capacity: int = Field(5, ge=1, le=40000)
    email: str | None = None
    inbound_bucket: str | None = None
    archive_bucket: str | None = None
    errors_bucket: str | None = None
    versioning: bool = False
    tracing: bool = False
    queue_batch_size: int = Field(1, ge=1, le=10)
    max_receive_count: int = Field(5, ge=1, le=1000)
    max_concurrency: int | None = Field(None, ge=2, le=1000)
    artifact_bucket: str | None = None
    api: bool = False
    api_auth: Literal["iam", "none"] = "iam"
    tags: dict[str, str] = Field(default_factory=dict)
    alarms: bool = True
    alarm_email: str | None = None
    alarm_topic: str | None = None
    alarm_thresholds: AlarmThresholds = Field(default_factory=AlarmThresholds)
    dashboard: bool = True

    @field_validator("stack_name")
    @classmethod
    def _stack_name(cls, v: str | None) -> str | None:
        if v is not None:
            check_stack_name(v)
        return v

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if v not in RETENTION_DAYS:
            raise ValueError(f"must be one of {', '.join(map(str, RETENTION_DAYS))}")
        return v

    @field_validator("email", "alarm_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", v):
            raise ValueError(f"{v!r} is not an email address")
        return v

    @field_validator("inbound_bucket", "archive_bucket", "errors_bucket", "artifact_bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        if v is not None and not BUCKET_RE.fullmatch(v):
            raise ValueError(f"{v!r} is not a valid S3 bucket name (3-63 characters: a-z 0-9 . -)")
        return v

    @field_validator("alarm_topic")
    @classmethod
    def _alarm_topic(cls, v: str | None) -> str | None:
        if v is not None and not TOPIC_ARN_RE.fullmatch(v):
            raise ValueError(f"{v!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
        return v

    @model_validator(mode="after")
    def _alarm_target(self) -> DeploySettings:
        if self.alarm_email and not self.alarms:
            raise ValueError("alarm_email: the alarms are off (deploy.alarms: false)")
        if self.alarm_email and self.alarm_topic:
            raise ValueError(
                "alarm_email: the alarms go to alarm_topic, a topic the stack does not own: "
                "subscribe the address to that topic instead"
            )
        return self

    def resolved_stack_name(self, config: Config) -> str:
        if self.stack_name:
            return self.stack_name
        if config.feeds[0].name is not None:
            # a name made from one feed's table would change (a new stack) with the feeds
            raise ConfigError(
                "a config with feeds names its stack: set deploy.stack_name, or pass --stack",
                key="deploy.stack_name",
                source=config.source,
            )
        base = re.sub(r"[^a-z0-9-]+", "-", f"batchdrop-{config.table.table_name}".lower())
        return base[:MAX_STACK_NAME].strip("-")


def check_stack_name(name: str) -> str:
    if not STACK_NAME_RE.fullmatch(name) or len(name) > MAX_STACK_NAME:
        raise ConfigError(
            f"stack name {name!r} must be {MAX_STACK_NAME} characters at most, lowercase letters, "
            "digits and hyphens, starting with a letter (it is part of the inbound bucket's name)",
            key="deploy.stack_name",
        )
    return name


def deploy_settings(config: Config, **overrides: Any) -> DeploySettings:
    """The ``deploy:`` section of ``config``, with command-line ``overrides`` (None: not given)."""
    data: dict[str, Any] = dict(config.deploy.model_extra or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return DeploySettings.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(p) for p in err["loc"]]
        msg = err["msg"].removeprefix("Value error, ")
        if not loc and ": " in msg:  # a rule between settings names the one it is about
            first, msg = msg.split(": ", 1)
            loc = [first]
        key = ".".join(["deploy", *loc])
        if err["type"] == "extra_forbidden":
            model: type[BaseModel] = (
                AlarmThresholds if loc[0] == "alarm_thresholds" else DeploySettings
            )
            allowed = ", ".join(model.model_fields)
            msg = f"is not a deploy setting (allowed: {allowed})"
        elif err["type"] == "literal_error":
            msg = f"got {err.get('input')!r}; {msg}"
        raise ConfigError(msg, key=key, source=config.source) from None
