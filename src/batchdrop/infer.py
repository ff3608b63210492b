"""``batchdrop init --from sample.csv``: a config whose schema is inferred from a sample."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import yaml

from .schema import INT_RE, ISO_DATE_RE, ISO_DATETIME_RE, NUM_RE

SAMPLE_ROWS = 10_000
MISSING = {"", "NULL", "null", "N/A", "NA", "n/a"}
TRUE, FALSE = {"true", "True", "TRUE"}, {"false", "False", "FALSE"}


def _infer_type(values: list[str]) -> str:
    present = [v for v in values if v not in MISSING]
    if not present:
        return "string"
    for name, test in (
        ("integer", INT_RE.fullmatch),
        ("number", NUM_RE.fullmatch),
        ("boolean", lambda v: v in TRUE or v in FALSE),
        ("date", ISO_DATE_RE.fullmatch),
        ("datetime", ISO_DATETIME_RE.fullmatch),
    ):
        if all(test(v) for v in present):
            if name == "integer" and any(
                len(v) > 1 and v.lstrip("+-").startswith("0") for v in present
            ):
                return "string"  # leading zeros: an identifier, not a number
            return name
    return "string"


def _guess_key(
    header: list[str], rows: list[list[str]], types: list[str]
) -> tuple[str, str | None, bool]:
    """(partition key, sort key, sure). Keys are identifiers: id-like names first, then text
    columns left to right (a number, flag or timestamp that happens to be unique in a sample is
    not a key); the first unique column, else the first unique pair; ``sure`` is False when
    nothing is unique in the sample."""
    n = len(rows)

    def unique(*idx: int) -> bool:
        keys = {tuple(r[i] for i in idx) for r in rows}
        return len(keys) == n and all(r[i] not in MISSING for i in idx for r in rows)

    def id_like(i: int) -> bool:
        return bool(re.search(r"(^|_)(id|key|code|sku|ref|no|number)$", header[i], re.I))

    usable = [i for i in range(len(header)) if types[i] == "string" or id_like(i)]
    usable.sort(key=lambda i: not id_like(i))
    for i in usable:
        if unique(i):
            return header[i], None, True
    for i in usable:
        for j in usable:
            if j != i and unique(i, j):
                return header[i], header[j], True
    return header[0], header[1] if len(header) > 1 else None, False


def infer_config(sample: str | None) -> tuple[str, list[str]]:
    notes: list[str] = []
    if sample is None:
        fields = [
            {"name": "id", "type": "string", "constraints": {"required": True}},
            {"name": "value", "type": "string"},
        ]
        pk, sk, name = "id", None, "items"
        notes.append("a starting config: edit schema.fields to match your files")
    else:
        path = Path(sample)
        with open(path, "rb") as raw:
            head = raw.read(2)
        opener: Any = open
        if head == b"\x1f\x8b":
            import gzip

            opener = gzip.open
        with opener(path, "rb") as f:
            text = io.TextIOWrapper(f, encoding="utf-8-sig", errors="replace", newline="")
            sniff = text.read(64 * 1024)
            text.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sniff, delimiters=",;\t|")
                delimiter = dialect.delimiter
            except csv.Error:
                delimiter = ","
            reader = csv.reader(text, delimiter=delimiter)
            header = [h.strip() for h in next(reader, [])]
            if not header or not any(header):
                from .errors import DataError

                raise DataError("the sample has no header row", file=sample)
            rows = []
            for row in reader:
                if len(row) == len(header):
                    rows.append(row)
                if len(rows) >= SAMPLE_ROWS:
                    break
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in header]
        fields = []
        types = [_infer_type(list(values)) for values in columns]
        pk, sk, sure = _guess_key(header, rows, types)
        for h, values, kind in zip(header, columns, types, strict=True):
            spec: dict[str, Any] = {"name": h, "type": kind}
            if values and all(v not in MISSING for v in values) and h not in (pk, sk):
                spec["constraints"] = {"required": True}
            fields.append(spec)
        name = re.sub(r"\W+", "_", path.name.split(".")[0]).strip("_").lower() or "items"
        if delimiter != ",":
            notes.append(f"the delimiter looks like {delimiter!r}")
        key = f"{pk} + {sk}" if sk else pk
        notes.append(f"inferred {len(fields)} fields from {len(rows)} sample rows")
        notes.append(
            f"CHECK THE KEY: guessed {key}"
            + ("" if sure else " (no column or pair is unique in the sample!)")
        )
    config: dict[str, Any] = {
        "inbound": "./inbound",
        "archive": "./archive",
        "errors": "./errors",
        "suffix": ".csv",
        "table": {"url": f"sqlite:///{name}.db", "name": name, "partition_key": pk},
        "schema": {"fields": fields, "missingValues": [""]},
        "on_error": "reject_file",
        "duplicates": "last_wins",
        "notify": ["console"],
    }
    if sk:
        config["table"]["sort_key"] = sk
    if sample is not None and delimiter != ",":
        config["csv"] = {"delimiter": delimiter}
    head_comment = (
        "# batchdrop config"
        + (f", inferred from {Path(sample).name}" if sample else "")
        + ".\n# Check the types and the key (table.partition_key / sort_key).\n"
    )
    return head_comment + yaml.safe_dump(config, sort_keys=False, allow_unicode=True), notes
