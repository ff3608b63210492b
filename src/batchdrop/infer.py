"""``batchdrop init --from sample.csv``: a config whose schema and key are inferred from a sample.

The sample is read as a load would read it (infer_read), each column's type, date format and
missing-value markers are settled (infer_types), and the key is the smallest set of columns
that is unique over the sample (infer_keys). What inference cannot be sure of is said twice: in
the command's output and as a comment in the file it writes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import yaml

from . import infer_read
from .infer_encoding import label
from .infer_keys import (
    MAX_KEY_COLUMNS,
    KeyChoice,
    KeySample,
    find_key,
    hopeless,
    key_columns,
)
from .infer_read import Sample, open_sample, table_name
from .infer_types import ColumnProfile, Typing, settle

SUFFIXES = (".csv", ".tsv", ".txt", ".psv", ".dat")


def infer_config(sample: str | None) -> tuple[str, list[str]]:
    """The text of a batchdrop.yaml, and the notes to show the person who asked for it."""
    if sample is None:
        return _starter()
    path = Path(sample)
    read = open_sample(path)
    profiles, keys = _learn(read)
    typing = settle(profiles)
    choice = find_key(keys, key_columns(profiles, typing.kinds, typing.missing))
    key = choice.columns if choice else (read.header[0],)
    settled = bool(choice and choice.unique and keys.exact and read.whole)
    key_lines = _key_notes(choice, key, read, keys.rows, keys.exact)
    notes = _reading_notes(read) + _type_notes(profiles, typing) + key_lines

    fields: list[_Flow] = []
    for p, kind in zip(profiles, typing.kinds, strict=True):
        spec = _Flow(name=p.name, type=kind.type if kind else "string")
        if kind is not None and kind.format != "default":
            spec["format"] = kind.format
        missing = any(m in typing.missing for m in p.markers)
        # a value in every row read is required; a sample cannot promise that of the rest
        if read.whole and p.values and not missing and p.name not in key:
            spec["constraints"] = {"required": True}
        fields.append(spec)
    name = table_name(path)
    config: dict[str, Any] = {
        "inbound": "./inbound",
        "archive": "./archive",
        "errors": "./errors",
        "suffix": _suffix(path),
        "table": {"url": f"sqlite:///{name}.db", "name": name, "partition_key": key[0]},
        "schema": {"fields": fields, "missingValues": _FlowList(typing.missing)},
        "on_error": "reject_file",
        "duplicates": "last_wins" if settled else "reject",
        "notify": ["console"],
    }
    if len(key) > 1:
        # a wider key: the most identifier-like column partitions, the rest sort (joined)
        config["table"]["sort_key"] = key[1] if len(key) == 2 else _FlowList(key[1:])
    if read.delimiter != ",":
        config["csv"] = {"delimiter": read.delimiter}
    if read.encoding != "utf-8-sig":
        config.setdefault("csv", {})["encoding"] = read.encoding
    text = yaml.dump(config, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    comments = {
        "table": [
            "the key: " + line.removeprefix("CHECK THE KEY: guessed ") for line in key_lines[:1]
        ]
        + key_lines[1:],
        "duplicates": []
        if settled
        else [
            "a key that repeats in one file rejects the file (listing the rows) instead of "
            "keeping one row silently; last_wins or first_wins keep one"
        ],
        "schema": typing.notes,
    }
    head = (
        f"# batchdrop config, inferred from {path.name}.\n"
        "# Check the types and the key (table.partition_key / sort_key).\n"
    )
    return head + _commented(text, comments), notes


def _learn(read: Sample) -> tuple[list[ColumnProfile], KeySample]:
    """One pass over the sample: each column's profile, and the rows as hashes for the key."""
    profiles = [ColumnProfile(h, i) for i, h in enumerate(read.header)]
    keys = KeySample(len(profiles))
    for chunk in read.chunks:
        columns = list(zip(*chunk, strict=True))
        for p, values in zip(profiles, columns, strict=True):
            p.add(values)
            if hopeless(p):
                keys.drop(p.position)  # no need to hold what cannot be a key
        keys.add(columns)
    return profiles, keys


class _Flow(dict[str, Any]):
    """A mapping written on one line: a field per line keeps a wide schema readable."""


class _FlowList(list[str]):
    """A list written on one line."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)
_Dumper.add_representer(
    _FlowList, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def _starter() -> tuple[str, list[str]]:
    config = {
        "inbound": "./inbound",
        "archive": "./archive",
        "errors": "./errors",
        "suffix": ".csv",
        "table": {"url": "sqlite:///items.db", "name": "items", "partition_key": "id"},
        "schema": {
            "fields": [
                {"name": "id", "type": "string", "constraints": {"required": True}},
                {"name": "value", "type": "string"},
            ],
            "missingValues": [""],
        },
        "on_error": "reject_file",
        "duplicates": "last_wins",
        "notify": ["console"],
    }
    head = "# batchdrop config.\n# Check the types and the key (table.partition_key / sort_key).\n"
    text = head + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    return text, ["a starting config: edit schema.fields to match your files"]


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    return suffixes[-1] if suffixes and suffixes[-1] in SUFFIXES else ".csv"


def _reading_notes(read: Sample) -> list[str]:
    notes = []
    if read.whole:
        notes.append(f"read all {read.rows:,} rows of {read.path.name}")
    elif read.gzipped:
        notes.append(
            f"read the first {infer_read.WHOLE_FILE_BYTES >> 20} MB (uncompressed) of "
            f"{read.path.name}: "
            f"{read.rows:,} rows"
        )
    else:
        notes.append(
            f"read {read.rows:,} rows of {read.path.name} ({read.size / 1e6:,.0f} MB): its "
            f"first {infer_read.HEAD_BYTES >> 20} MB and {infer_read.SLICES} slices spread over "
            "the rest"
        )
    notes += read.notes  # the encoding, when it is not UTF-8
    if read.delimiter != ",":
        notes.append(f"the delimiter is {read.delimiter!r}")
    if read.bad_rows:
        notes.append(
            f"{read.bad_rows:,} row(s) are not {len(read.header)} well-formed fields "
            f"(the first at line {read.first_bad_line}): a load rejects them"
        )
    if read.bad_bytes:
        notes.append(
            f"{read.bad_bytes:,} byte(s) are not valid {label(read.encoding)} (the first at "
            f"line {read.first_bad_bytes_line}): a load rejects those rows"
        )
    return notes


def _type_notes(profiles: list[ColumnProfile], typing: Typing) -> list[str]:
    counts: dict[str, int] = {}
    for kind in typing.kinds:
        t = kind.type if kind else "string"
        counts[t] = counts.get(t, 0) + 1
    notes = [
        f"inferred {len(profiles)} fields: "
        + ", ".join(f"{n} {t}" for t, n in sorted(counts.items(), key=lambda x: -x[1]))
    ]
    for p, kind in zip(profiles, typing.kinds, strict=True):
        if kind is not None and kind.format != "default":
            notes.append(f"{p.name!r} is a {kind.type} in the format {kind.format} ({p.example!r})")
    markers = [m for m in typing.missing if m]
    if markers:
        where = [p.name for p in profiles if any(m in p.markers for m in markers)]
        notes.append(
            f"missing values: {', '.join(map(repr, markers))} and the empty value "
            f"(found in {len(where)} column(s): {', '.join(where[:6])}"
            + (", …)" if len(where) > 6 else ")")
        )
    return notes + typing.notes


def _key_notes(
    choice: KeyChoice | None, key: tuple[str, ...], read: Sample, held: int, exact: bool
) -> list[str]:
    shown = " + ".join(key)
    every = read.whole and exact
    where = f"all {held:,} rows" if every else f"the {held:,} rows sampled"
    if not read.rows:
        return [
            f"CHECK THE KEY: guessed {shown}: the file has no data rows to learn from, so "
            "every column is read as text; run init on a file with rows"
        ]
    if choice is None:
        return [
            f"CHECK THE KEY: guessed {shown}, but no column can be a key (each has missing "
            "values, or holds decimal numbers or flags): add a column that identifies each "
            "row and make it table.partition_key"
        ]
    if choice.unique:
        sure = f"CHECK THE KEY: guessed {shown} (unique in {where})"
        if every:
            return [sure]
        return [sure, "a key that repeats in a file rejects that file (duplicates: reject)"]
    repeats = f"{choice.repeats:,} of {where} repeat the {shown} of an earlier row"
    fix = "add one column that identifies each row and make it table.partition_key"
    return [
        f"CHECK THE KEY: guessed {shown}, but {repeats}: no set of up to "
        f"{MAX_KEY_COLUMNS} columns identifies a row",
        f"such a file is rejected, listing those rows (duplicates: reject); to load it, {fix}",
    ]


def _commented(text: str, comments: dict[str, list[str]]) -> str:
    """``text`` with comment lines above its top-level keys."""
    out = []
    for line in text.splitlines(keepends=True):
        top = line.split(":", 1)[0]
        if line[:1].isalpha() and comments.get(top):
            for comment in comments[top]:
                out += [f"# {part}\n" for part in textwrap.wrap(comment, 96)]
        out.append(line)
    return "".join(out)
