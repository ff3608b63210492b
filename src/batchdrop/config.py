"""batchdrop.yaml → a typed, validated ``Config``.

Every error names the key it is about and what is allowed there. ``BATCHDROP_*`` environment
variables override single keys (``BATCHDROP_INBOUND=s3://in/``, ``BATCHDROP_TABLE__URL=…``), which
is how the Lambda runtime points one bundled config at the stack's buckets and tables.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    ByteSize,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .config_feeds import Feed, FeedMatch, resolve_feeds
from .config_table import NON_STRING_KEY_CHARS, KeyColumns, Strict, TableConfig
from .errors import ConfigError
from .patterns import compile_pattern
from .redact import redact_url

FieldType = Literal["string", "integer", "number", "boolean", "date", "datetime"]
DEFAULT_TRUE = ["true", "True", "TRUE", "1"]
DEFAULT_FALSE = ["false", "False", "FALSE", "0"]
#: BATCHDROP_* variables that are not settings: where the config is, and where the function
#: reads its webhook URLs (aws/secrets.py)
NOT_SETTINGS = ("BATCHDROP_CONFIG", "BATCHDROP_NOTIFY_PARAMETER")
#: codecs Python knows that are not how a file's text is stored: they can fail on the engine's
#: error handler or decode to lone surrogates
NOT_FILE_ENCODINGS = frozenset(
    {"idna", "punycode", "utf-7", "unicode-escape", "raw-unicode-escape", "undefined"}
)
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .\-]*$")


class Constraints(Strict):
    required: bool = False
    unique: bool = False  # accepted for Table Schema compatibility; keys are unique by definition
    pattern: str | None = None
    enum: list[Any] | None = None
    min_length: int | None = Field(None, alias="minLength", ge=0)
    max_length: int | None = Field(None, alias="maxLength", ge=0)
    minimum: Any = None
    maximum: Any = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            compile_pattern(v)  # ASCII classes unless the pattern opts in with (?u)
        return v


class SchemaField(Strict):
    name: str
    type: FieldType = "string"
    format: str = "default"
    description: str | None = None
    title: str | None = None
    constraints: Constraints = Field(default_factory=Constraints)
    true_values: list[str] = Field(default_factory=lambda: list(DEFAULT_TRUE), alias="trueValues")
    false_values: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FALSE), alias="falseValues"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a field name cannot be empty")
        return v


class TableSchema(Strict):
    """A subset of the Frictionless Table Schema."""

    fields: list[SchemaField] = Field(min_length=1)
    missing_values: list[str] = Field(default_factory=lambda: [""], alias="missingValues")
    primary_key: list[str] | None = Field(None, alias="primaryKey")

    @field_validator("primary_key", mode="before")
    @classmethod
    def _pk_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _unique_names(self) -> TableSchema:
        seen: set[str] = set()
        for f in self.fields:
            if f.name in seen:
                raise ValueError(f"field {f.name!r} is declared twice")
            seen.add(f.name)
        return self

    @model_validator(mode="after")
    def _bounds_convert(self) -> TableSchema:
        from .schema import RowConverter  # the converter checks enum and bounds against types

        RowConverter(self, list(range(len(self.fields))), ())
        return self

    def field(self, name: str) -> SchemaField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


class CsvDialect(Strict):
    delimiter: str = Field(",", min_length=1, max_length=1)
    quotechar: str = Field('"', min_length=1, max_length=1)
    #: any codec Python knows (latin-1, cp1252, utf-16, ...); the default reads UTF-8 with or
    #: without a byte-order mark
    encoding: str = "utf-8-sig"
    max_field_size: int = Field(131072, ge=1024)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        import codecs

        try:
            info = codecs.lookup(v)
        except LookupError:
            raise ValueError(
                f"{v!r} is not an encoding Python knows (e.g. utf-8, latin-1, cp1252, utf-16)"
            ) from None
        if not getattr(info, "_is_text_encoding", True) or info.name in NOT_FILE_ENCODINGS:
            raise ValueError(f"{v!r} is not a file encoding (e.g. utf-8, latin-1, cp1252, utf-16)")
        return v


class Limits(Strict):
    """Bounds that hold for hostile input: a breach rejects the file with its reason, in
    bounded time, memory and disk."""

    #: uncompressed bytes read from one file ("20GB", "500MiB" or a number)
    max_bytes: ByteSize = Field(ByteSize(20 * 1000**3), ge=1)
    #: a compressed file may expand to at most this many times its own size (a gzip bomb)
    max_compression_ratio: int = Field(250, ge=1)
    #: rows read from one file (data rows, blank lines not counted)
    max_rows: int = Field(200_000_000, ge=1)
    #: lines of the rejected-rows report (a rejected row is listed whole or not at all); rows
    #: left out are counted in the receipt's ``report_rows_omitted``
    max_report_rows: int = Field(100_000, ge=0)


class CheckpointSettings(Strict):
    """How often a long pass over a file saves where it got to (two-pass tables: DynamoDB). A
    run that stops (the time of an invocation ran out, a crash, kill -9) goes on from its last
    checkpoint and repeats at most one interval of work."""

    #: a checkpoint after this many (uncompressed) bytes of the file ("64MB", or a number)
    every_bytes: ByteSize = Field(ByteSize(64 * 1000**2), ge=1)
    #: and after this many seconds, whichever comes first
    every_seconds: float = Field(30.0, gt=0)


class ShardSettings(Strict):
    """How a big file is loaded in parallel (two-pass tables: DynamoDB). A file bigger than
    ``shard_bytes`` is cut at row boundaries into shards that run side by side: local worker
    processes (``process``/``run --jobs``), or on AWS shard messages on the events queue that
    the function takes up, at most ``max_in_flight`` at a time."""

    #: a file bigger than this is cut into shards of about this size (keep one shard's pass
    #: well inside one invocation: 64MB is about a minute of a 1024 MB function)
    shard_bytes: ByteSize = Field(ByteSize(64 * 1000**2), ge=1)
    #: shards at work at once: the default of ``--jobs`` and, on AWS, of the function's
    #: concurrency on the events queue (deploy.max_concurrency). Each writes at up to a few
    #: thousand items a second: on a provisioned table, keep the product under its write
    #: capacity (throttled writes are retried, slowing the load down, never losing rows)
    max_in_flight: int = Field(8, ge=1, le=1000)


class AwsConfig(Strict):
    endpoint_url: str | None = None
    region: str | None = None
    #: BatchWriteItem requests in flight at most (per process): the write governor adapts the
    #: number in flight below it to the table's latency and throttling
    max_workers: int = Field(32, ge=1, le=256)
    max_retries: int = Field(8, ge=0, le=30)
    #: write units a second one load may consume at most (None: as many as the table takes);
    #: leaves room for other writers, and fits a provisioned table's write capacity
    max_write_units_per_s: float | None = Field(None, gt=0)
    #: US dollars per million write request units, for the receipt's cost estimate
    #: (on-demand's price in us-east-1)
    write_unit_price: float = Field(0.625, ge=0)
    #: a claim not renewed for this long belonged to a run that died: another may take it (a
    #: running load renews it at each checkpoint, so it must outlast checkpoint.every_seconds)
    claim_ttl_seconds: int = Field(900, ge=2)


class DeployConfig(Strict):
    """How ``batchdrop template``/``deploy`` shape the stack; ignored by the runtime itself."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


MaxRejected = int | str


class Config(Strict):
    inbound: str
    archive: str
    errors: str
    suffix: str = ".csv"
    table: TableConfig
    ledger: str | None = None
    schema_: TableSchema = Field(alias="schema")
    csv: CsvDialect = Field(default_factory=CsvDialect)
    extra_columns: Literal["reject", "ignore"] = "reject"
    on_error: Literal["reject_file", "skip_rows"] = "reject_file"
    max_rejected: MaxRejected | None = None
    duplicates: Literal["last_wins", "first_wins", "reject"] = "last_wins"
    #: rows whose key repeats an earlier row's, beyond which the file is rejected (a count or a
    #: percentage of the rows read): a wrong key must not collapse a file in silence
    max_duplicates: MaxRejected = "1%"
    notify: list[str] = Field(default_factory=lambda: ["console"])
    batch_size: int = Field(5000, ge=1, le=100000)
    limits: Limits = Field(default_factory=Limits)
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    shards: ShardSettings = Field(default_factory=ShardSettings)
    #: a file whose run fails (retryable) this many times is set aside in the errors location
    max_attempts: int = Field(5, ge=1, le=100)
    aws: AwsConfig = Field(default_factory=AwsConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    #: ``upsert``: every row is written over what the table holds. ``snapshot``: the file is
    #: the complete current set (of the table, or of each partition it holds with
    #: ``snapshot_scope: partition``): keys of the previous snapshot absent from it are deleted
    mode: Literal["upsert", "snapshot"] = "upsert"
    snapshot_scope: Literal["table", "partition"] = "table"
    #: a snapshot that would delete more than this (a count, or a percentage of the previous
    #: snapshot's keys) is rejected with nothing written: a truncated upload must not wipe a table
    max_deletes: MaxRejected = "10%"
    #: a column whose value orders versions of an item (a date, a timestamp, a version number):
    #: a row is written only if the stored item is older by it, else it is counted stale
    only_if_newer: str | None = None
    #: ``all``: every valid row is written. ``changed_only``: only rows that are new or differ
    #: from the feed's last load (by a content hash kept per key), the rest counted unchanged
    write: Literal["all", "changed_only"] = "all"
    source: str | None = Field(None, exclude=True)
    #: the feed this config loads (None: a config without ``feeds:``)
    feed: str | None = Field(None, exclude=True)
    # a lambda, not ``list``: pydantic reads the factory's signature, and a builtin's costs the
    # start of every command a tokenizer's worth of regular expressions (10 ms)
    _feeds: list[Feed] = PrivateAttr(default_factory=lambda: [])

    @field_validator("max_rejected", "max_duplicates", "max_deletes")
    @classmethod
    def _max_rejected(cls, v: MaxRejected | None) -> MaxRejected | None:
        if isinstance(v, str):
            m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", v)
            if not m or Decimal(m.group(1)) > 100:
                raise ValueError("must be a count (e.g. 100) or a percentage (e.g. '5%')")
        elif isinstance(v, int) and v < 0:
            raise ValueError("must be zero or more")
        return v

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, v: str) -> str:
        if not v.startswith("."):
            raise ValueError("must start with a dot, e.g. .csv")
        return v

    @field_validator("notify")
    @classmethod
    def _notify(cls, v: list[str]) -> list[str]:
        for target in v:
            if not (
                target == "console"
                or target.startswith(("https://", "http://", "sns://"))
                or target.endswith(".jsonl")
            ):
                shown = redact_url(target) if "://" in target else target  # may hold a secret
                raise ValueError(
                    f"{shown!r} is not a notifier: use 'console', a file ending in .jsonl, "
                    "an https:// webhook URL or sns://TOPIC_ARN"
                )
        return v

    @model_validator(mode="after")
    def _lease_outlasts_a_checkpoint(self) -> Config:
        if self.aws.claim_ttl_seconds < 2 * self.checkpoint.every_seconds:
            raise ValueError(
                f"aws.claim_ttl_seconds ({self.aws.claim_ttl_seconds}) must be at least twice "
                f"checkpoint.every_seconds ({self.checkpoint.every_seconds:g}): a run renews "
                "its claim at each checkpoint, and a claim that lapses is taken over"
            )
        return self

    @model_validator(mode="after")
    def _keys_in_schema(self) -> Config:
        names = [f.name for f in self.schema_.fields]
        table = self.table
        for role, columns in (
            ("partition_key", table.partition_columns),
            ("sort_key", table.sort_columns),
        ):
            for key in columns:
                if key not in names:
                    raise ValueError(
                        f"table.{role} {key!r} is not a field of the schema "
                        f"(fields: {', '.join(names)})"
                    )
        sep = table.key_separator
        for role, columns, attr in (
            ("partition_key", table.partition_columns, table.physical_key[0]),
            ("sort_key", table.sort_columns, table.physical_key[1]),
        ):
            if len(columns) < 2 or attr is None:
                continue
            if attr in names:
                raise ValueError(
                    f"table.{role}: the joined attribute name {attr!r} is a field of the "
                    f"schema too; set table.{role}_name to another name"
                )
            for column in columns:
                kind = self.schema_.field(column).type
                if kind != "string" and set(sep) & NON_STRING_KEY_CHARS:
                    raise ValueError(
                        f"table.key_separator {sep!r} can be part of the text of "
                        f"{column!r} ({kind}), a column of table.{role}: use '#' or '|'"
                    )
        pk = self.schema_.primary_key
        if pk is not None and list(pk) != list(table.key):
            raise ValueError(
                f"schema.primaryKey {pk} does not match the table key {list(table.key)} "
                "(table.partition_key's columns, then table.sort_key's)"
            )
        return self

    @model_validator(mode="after")
    def _version_column(self) -> Config:
        column = self.only_if_newer
        if column is None:
            return self
        names = [f.name for f in self.schema_.fields]
        if column not in names:
            raise ValueError(
                f"only_if_newer {column!r} is not a field of the schema "
                f"(fields: {', '.join(names)})"
            )
        if column in self.table.key:
            raise ValueError(
                f"only_if_newer {column!r} is a key column: it must be a column that orders "
                "versions of one item (a date, a timestamp, a version number)"
            )
        if self.schema_.field(column).type == "boolean":
            raise ValueError(f"only_if_newer {column!r} is a boolean: it cannot order versions")
        return self

    @property
    def key(self) -> KeyColumns:
        return self.table.key

    @property
    def feeds(self) -> list[Feed]:
        """Every feed of the deployment this config belongs to, in the order they match (a
        config without ``feeds:`` is one feed that takes every file)."""
        return self._feeds or [Feed(None, FeedMatch(), self)]

    @property
    def ledger_url(self) -> str:
        if self.ledger:
            return self.ledger
        if self.table.url.startswith("dynamodb://"):
            return f"dynamodb://{self.table.table_name}-ledger"
        return self.table.url

    def rejected_limit(self, rows_read: int) -> int | None:
        """How many rejected rows are tolerated in skip_rows mode (None: no limit)."""
        if self.max_rejected is None:
            return None
        if isinstance(self.max_rejected, int):
            return self.max_rejected
        return _share(self.max_rejected, rows_read)

    @property
    def compares_loads(self) -> bool:
        """Whether a load is compared with the feed's last one (a snapshot, changed_only)."""
        return self.mode == "snapshot" or self.write == "changed_only"

    def deletes_limit(self, previous_keys: int) -> int:
        """How many keys of the previous snapshot a snapshot may delete."""
        if isinstance(self.max_deletes, int):
            return self.max_deletes
        return _share(self.max_deletes, previous_keys)

    def duplicates_limit(self, rows_read: int) -> int:
        """How many duplicate rows a file may hold before it is rejected."""
        if isinstance(self.max_duplicates, int):
            return self.max_duplicates
        return _share(self.max_duplicates, rows_read)


def _share(percentage: str, rows_read: int) -> int:
    pct = Decimal(percentage.strip().rstrip("%").strip())
    return int(pct * rows_read / 100)


def _apply_env(data: dict[str, Any], environ: dict[str, str]) -> None:
    """``BATCHDROP_A__B=v`` sets ``a.b``; a feed's settings are reached by its name
    (``BATCHDROP_FEEDS__GRADES__TABLE__URL``; ``-`` in a name is ``_`` here)."""
    for name, value in environ.items():
        if not name.startswith("BATCHDROP_") or name in NOT_SETTINGS:
            continue
        path = name.removeprefix("BATCHDROP_").lower().split("__")
        node: Any = data
        for part in path[:-1]:
            if isinstance(node, list):  # feeds: the entry of that name
                node = next(
                    (
                        f
                        for f in node
                        if isinstance(f, dict)
                        and str(f.get("name", "")).lower().replace("-", "_") == part
                    ),
                    None,
                )
                if node is None:
                    raise ConfigError(f"{name} names a feed the config does not have")
                continue
            node = node.setdefault(part, {})
            if not isinstance(node, dict | list):
                raise ConfigError(
                    f"{name} overrides a key that is not a mapping", key=".".join(path)
                )
        node[path[-1]] = yaml.safe_load(value) if value[:1] in "[{" else value


def _where(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + ("schema" if p == "schema_" else str(p)))
    return "".join(parts)


def parse_config(
    data: Any,
    *,
    source: str = "batchdrop.yaml",
    environ: dict[str, str] | None = None,
    base_dir: Path | None = None,
) -> Config:
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping of keys to values", source=source)
    data = dict(data)
    _apply_env(data, dict(os.environ) if environ is None else environ)

    def validate(settings: dict[str, Any], at: str = "") -> Config:
        try:
            config = Config.model_validate(settings)
        except ValidationError as e:
            from .config_errors import describe_problems  # difflib and the rest: errors only

            problems = describe_problems(e, settings, Config, _where)
            if at:
                problems = [(f"{at}.{key}" if key else at, msg) for key, msg in problems]
            if len(problems) == 1:
                key, msg = problems[0]
                raise ConfigError(msg, key=key or None, source=source) from None
            listed = "".join(f"\n  {key}: {msg}" if key else f"\n  {msg}" for key, msg in problems)
            error = ConfigError(f"{len(problems)} problems:{listed}", source=source)
            error.key = problems[0][0] or None
            raise error from None
        config.source = source
        if base_dir is not None:
            _resolve_paths(config, base_dir)
        return config

    if "feeds" not in data:
        return validate(data)
    feeds = resolve_feeds(data, data["feeds"], validate, source)
    _one_ledger(feeds)
    for feed in feeds:
        feed.config._feeds = feeds
    # the deployment's settings are every feed's; its first feed stands for it where one
    # config is asked for (a runtime that loads files routes each to its own feed)
    return feeds[0].config


def _one_ledger(feeds: list[Feed]) -> None:
    """Every DynamoDB feed records its runs in one ledger (the first such feed's, unless
    ``ledger:`` names one); a SQLite feed keeps its ledger in its own database, so that its
    rows and its run record commit in one transaction."""
    shared = next(
        (f.config.ledger_url for f in feeds if f.config.table.url.startswith("dynamodb://")), None
    )
    for feed in feeds:
        if feed.config.ledger is None and feed.config.table.url.startswith("dynamodb://"):
            feed.config.ledger = shared


def _resolve_paths(config: Config, base: Path) -> None:
    """Relative local paths in the config are relative to the config file, not the cwd."""

    def fix(loc: str) -> str:
        if "://" in loc or Path(loc).is_absolute():
            return loc
        return str((base / loc).resolve())

    config.inbound, config.archive, config.errors = map(
        fix, (config.inbound, config.archive, config.errors)
    )
    url = config.table.url
    if url.startswith("sqlite:///"):
        config.table.url = "sqlite:///" + fix(url.removeprefix("sqlite:///"))
    if config.ledger and config.ledger.startswith("sqlite:///"):
        config.ledger = "sqlite:///" + fix(config.ledger.removeprefix("sqlite:///"))
    config.notify = [
        fix(t) if t.endswith(".jsonl") and "://" not in t else t for t in config.notify
    ]


def load_config(
    path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None
) -> Config:
    env = dict(os.environ) if environ is None else environ
    p = Path(path or env.get("BATCHDROP_CONFIG") or "batchdrop.yaml")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no config file at {p} (create one with `batchdrop init`, or pass --config PATH)"
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read {p}: {e.strerror}") from None
    data = parse_yaml(text, str(p))
    return parse_config(data, source=str(p), environ=env, base_dir=p.resolve().parent)


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in ``text``. libyaml's parser (when PyYAML has it) reads a config ten
    times faster than the pure-Python one, with the same safe constructor behind it; a document
    it refuses is read again by the pure-Python parser, whose messages say what it expected and
    what it found (and which has the last word)."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)
        except (yaml.YAMLError, ValueError):  # ValueError: text libyaml cannot encode
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"not valid YAML{where}: {getattr(e, 'problem', e)}", source=source
        ) from None
