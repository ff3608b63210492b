"""A pass that reads keys straight from the text (rawkeys.py) ends exactly as the csv reader's.

``validate``'s passes over a file of plain strings run twice, once as they do and once with the
text path turned off, and must give the same receipt and the same rejected-rows report, line for
line: on a partner-like file, on that file mutated at random (quotes, delimiters, line breaks,
undecodable bytes put in, bytes dropped, the file cut short), on files whose odd lines come after
many good blocks, and on a public file. A check that the text path was taken keeps the
comparison from passing by never using it.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchdrop import rawkeys, scan
from batchdrop.config import parse_config
from batchdrop.errors import DataError
from batchdrop.estimate import dry_run_passes
from batchdrop.ports import FileRef
from batchdrop.report import Receipt, RejectedRowsReport
from batchdrop.scan import Pass

from .split_checks import public_file

FIELDS = [
    {"name": "student_id", "constraints": {"required": True}},
    {"name": "fname"},
    {"name": "lname"},
    {"name": "course", "constraints": {"required": True}},
]
TIMES = ("started_at", "finished_at", "duration_s")


class Store:
    def __init__(self, data: bytes):
        self.data = data

    def open(self, ref: FileRef, offset: int = 0) -> io.BytesIO:
        return io.BytesIO(self.data[offset:])


def validate(
    data: bytes, raw: bool, passes: Any = dry_run_passes, **overrides: Any
) -> tuple[dict[str, Any], bytes]:
    """The receipt and the rejected-rows report of ``validate``'s passes over ``data`` (or of
    ``passes``, called as ``dry_run_passes`` is)."""
    settings: dict[str, Any] = {
        "inbound": "/in",
        "archive": "/archive",
        "errors": "/errors",
        "table": {"url": "sqlite:///t.db", "partition_key": "student_id", "sort_key": "course"},
        "schema": {"fields": FIELDS},
        "notify": [],
        "on_error": "skip_rows",
        "max_duplicates": "100%",
        "csv": {"max_field_size": 1024},
    }
    settings.update(overrides)
    config = parse_config(settings, source="test", environ={})
    ref = FileRef("f.csv", len(data), "v1", 0.0, "/in/f.csv")
    receipt = Receipt("f.csv", ref.url, "v1", ref.size)
    report = RejectedRowsReport("f.csv")
    mp = pytest.MonkeyPatch()
    if not raw:
        mp.setattr(Pass, "_raw_keys", lambda self, src: None)
    try:
        passes(config, Store(data), ref, receipt, report, None, None)
        contents = report.contents()
    except DataError as e:
        if "limits.max_rows" not in e.reason:
            return {"error": str(e)}, b""
        # over the row limit: said at the end of the block or chunk that went past it
        assert e.line is not None and e.line > config.limits.max_rows
        return {"error": e.reason}, b""
    finally:
        mp.undo()
        report.discard()
    out = receipt.to_dict()
    for name in TIMES:
        out.pop(name)
    return out, contents


class Spy:
    """Counts the rows whose keys the text path read, and the blocks it was given."""

    def __init__(self, mp: pytest.MonkeyPatch):
        self.rows = self.blocks = 0
        real = rawkeys.RawKeys.keys

        def keys(raw: rawkeys.RawKeys, text: str) -> Any:
            found = real(raw, text)
            self.rows += len(found) if isinstance(found, list) else 0
            self.blocks += 1
            return found

        mp.setattr(rawkeys.RawKeys, "keys", keys)


def same(data: bytes, **overrides: Any) -> dict[str, Any]:
    fast = validate(data, raw=True, **overrides)
    slow = validate(data, raw=False, **overrides)
    assert fast == slow
    return fast[0]


def partner_file(rows: int, seed: int, odd: float = 0.0, missing: float = 0.005) -> bytes:
    """Random key order, repeated keys, missing keys; a course quoted where csv.writer must
    (a comma in it) and a last name with quotes; with ``odd``, that share of rows with a line
    break in a quoted field, a blank line after it, or a key quoted the other way."""
    rng = random.Random(seed)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n" if seed % 2 else "\n")
    w.writerow(["student_id", "fname", "lname", "course"])
    ids = [f"A{i:05d}" for i in rng.sample(range(10 * rows), rows)]
    courses = ["Fencing", "Philosophy, of Mind", "Art", "Law"]
    for i in range(rows):
        key = rng.choice(ids[:i]) if i and rng.random() < 0.01 else ids[i]
        if rng.random() < missing:
            key = rng.choice(["", "NA"])
        lname = rng.choice(["Smith", 'O"Brien', "", "de la Cruz"])
        row = [key, rng.choice(["Mary", "Ann", "Jo"]), lname, rng.choice(courses)]
        if rng.random() < odd:
            kind = rng.randrange(3)
            if kind == 0:
                row[1] = "two\nlines"
            elif kind == 1:
                w.writerow(row)
                out.write("\n")
                continue
            else:
                out.write(f'"{row[0]}",{row[1]},{row[2]},"{row[3]}"\n')
                continue
        w.writerow(row)
    return out.getvalue().encode()


BASE = partner_file(3000, seed=1)


def test_the_text_path_reads_the_file_and_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    receipt = same(partner_file(3000, seed=1, missing=0))
    assert spy.rows == 2 * 3000  # each pass read every row's key with the pattern
    assert receipt["rows_read"] == 3000 and receipt["rows_duplicate"] > 0
    receipt = same(BASE)  # a few keys missing: the rows of their blocks say which
    assert receipt["rows_rejected"] > 0 and receipt["rows_duplicate"] > 0


@pytest.mark.parametrize("odd", [0.001, 0.01, 0.2])
@pytest.mark.parametrize("seed", [2, 3])
def test_odd_lines_among_good_blocks(odd: float, seed: int) -> None:
    same(partner_file(4000, seed, odd))


@pytest.mark.parametrize(
    "overrides",
    [
        {"duplicates": "reject"},
        {"duplicates": "first_wins"},
        {"on_error": "reject_file"},
        {"max_rejected": 3},
        {"limits": {"max_rows": 1000}},
        {"limits": {"max_report_rows": 4}},
        {"csv": {"delimiter": ",", "quotechar": "'", "max_field_size": 1024}},
        {"schema": {"fields": FIELDS, "missingValues": []}},
    ],
    ids=repr,
)
def test_settings_that_stop_reject_or_count_differently(overrides: dict[str, Any]) -> None:
    same(BASE, **overrides)


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b"\xef\xbb\xbf" + b.replace(b"\n", b"\r\n"),  # a byte-order mark, CRLF
        lambda b: b.rstrip(b"\r\n"),  # no line break at the end
        lambda b: b + b"\n\n\n",  # blank lines at the end
        lambda b: b[: len(b) // 2] + b"A1,x,y," + b"z" * 9000 + b"\n" + b[len(b) // 2 :],
        lambda b: b[: len(b) // 2] + b"A1,x,y," + b"z" * 1025 + b"\n" + b[len(b) // 2 :],
        lambda b: b[: len(b) // 3] + b"\xff\xfe" + b[len(b) // 3 :],  # undecodable bytes
        lambda b: b[: len(b) // 3] + b"\r" + b[len(b) // 3 :],  # a lone CR
        lambda b: b[: len(b) // 3] + b'"' + b[len(b) // 3 :],  # a stray quote
        lambda b: b[: len(b) * 2 // 3],  # cut short
    ],
)
def test_files_with_something_wrong_in_the_middle(change: Any) -> None:
    same(change(BASE))


def test_an_undecodable_byte_after_good_blocks() -> None:
    rows = [f"A{i:05d},Mary,Smith,Art\n" for i in range(2000)]
    rows[1500] = "A01500,M\udcffary,Smith,Art\n"
    data = ("student_id,fname,lname,course\n" + "".join(rows)).encode("utf-8", "surrogateescape")
    receipt = same(data)
    assert receipt["errors"] == [
        {
            "line": 1502,
            "column": "fname",
            "value": "M\\xffary",
            "reason": "bytes that are not valid UTF-8",
        }
    ]


def test_a_required_field_besides_the_key() -> None:
    fields = [dict(f) for f in FIELDS]
    fields[1]["constraints"] = {"required": True}
    data = BASE.replace(b",Mary,", b",,")
    receipt = same(data, schema={"fields": fields})
    assert receipt["errors"][0]["column"] == "fname"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(BASE)),
            st.sampled_from([b'"', b",", b"\n", b"\r", b"\r\n", b"\xff", b"", b'""', b"\n\n"]),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_files(mutations: list[tuple[int, bytes, int]]) -> None:
    data = BASE
    for at, insert, drop in mutations:
        data = data[:at] + insert + data[at + drop :]
    same(data)


def test_a_public_file_keyed_by_its_text_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """palmerpenguins' raw file: a quoted stage in every row ("Adult, 1 Egg Stage"), NA in
    text, every column read as text; keyed by study, sample number and species."""
    path: Path = public_file("palmerpenguins", "data/penguins-raw.csv")
    data = path.read_bytes()
    header = next(csv.reader(io.StringIO(data.decode())))
    fields = [{"name": n} for n in header]
    key = ["studyName", "Sample Number"]
    for f in fields:
        if f["name"] in key:
            f["constraints"] = {"required": True}  # type: ignore[assignment]
    spy = Spy(monkeypatch)
    receipt = same(
        data,
        table={"url": "sqlite:///t.db", "partition_key": key[0], "sort_key": key[1]},
        schema={"fields": fields, "missingValues": ["", "NA"]},
    )
    assert spy.rows >= 340
    assert receipt["rows_read"] == 344 and receipt["rows_invalid"] == 0


@pytest.mark.parametrize("duplicates", ["last_wins", "reject"])
def test_paused_again_and_again_it_ends_as_the_csv_reader_does(
    tmp_path: Path, duplicates: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpointed passes (segments that start mid-file, a journal of key hashes, rows held
    back in the settling pass), paused every few blocks: the same table, counts and report as
    one run through the csv reader alone."""
    from .test_resumable_passes import FIELDS_OUT, load

    body = partner_file(5000, seed=5, odd=0.002, missing=0.0005)
    opts: dict[str, Any] = {
        "duplicates": duplicates,
        "max_duplicates": "5%",
        "schema": {"fields": FIELDS},
        "table": {"url": "dynamodb://t", "partition_key": "student_id", "sort_key": "course"},
    }
    with monkeypatch.context() as mp:
        mp.setattr(Pass, "_raw_keys", lambda self, src: None)
        whole, _, one, one_report, _ = load(
            tmp_path / "a", body, "f.csv", None, **opts, checkpoint={"every_bytes": 10**9}
        )
    spy = Spy(monkeypatch)
    parts, _, many, many_report, runs = load(tmp_path / "b", body, "f.csv", 3, **opts)
    assert runs > 10 and spy.rows > 1000  # segments that start mid-file, read as text
    assert parts.table.items == whole.table.items
    assert [getattr(many, f) for f in FIELDS_OUT] == [getattr(one, f) for f in FIELDS_OUT]
    assert many_report == one_report
    assert many.rows_rejected > 0 and (many.rows_duplicate or duplicates == "reject")


def test_a_file_of_missing_keys_is_left_to_the_csv_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """After RAW_MISSES blocks in a row that the csv reader had to read anyway, it reads the
    rest of the file: a file whose every key is missing (or held back) is not read twice."""
    rows = "".join(f",Mary,Smith,Course {i}\n" for i in range(20_000))
    data = ("student_id,fname,lname,course\n" + rows).encode()
    assert len(data) > 6 * scan.RAW_CHARS
    spy = Spy(monkeypatch)
    receipt = same(data, max_rejected="100%")
    assert spy.blocks == scan.RAW_MISSES  # the first pass only: no key was valid
    assert receipt["rows_invalid"] == 20_000


@pytest.mark.parametrize("kind", ["quoted line break", "blank line", "lone CR", "stray quote"])
def test_after_an_odd_line_the_pattern_reads_on(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A block with a quoted line break or a blank line is read alone by the csv reader and
    the pattern takes the next one; a stray quote that opens a quoted field to the end of the
    file leaves the rest to the csv reader, which says where."""
    rows = [f"A{i:05d},Mary,Smith,Course {i}\n" for i in range(20_000)]
    rows[100] = {
        "quoted line break": 'A00100,"Mary\nAnn",Smith,Course 100\n',
        "blank line": "A00100,Mary,Smith,Course 100\n\n",
        "lone CR": "A00100,Mary,Smith,Course 100\r",
        "stray quote": 'A00100,"Mary,Smith,Course 100\n',
    }[kind]
    rows[7000] = ",Mary,Smith,Course 7000\n"  # a missing key, said at its line
    data = ("student_id,fname,lname,course\n" + "".join(rows)).encode()
    spy = Spy(monkeypatch)
    receipt = same(data)
    if kind == "stray quote":
        assert spy.rows == 0 and receipt["rows_invalid"] >= 1  # the csv reader said where
    else:
        assert spy.rows > 15_000  # the blocks after the odd one
        assert receipt["rows_read"] == 20_000 and receipt["rows_invalid"] == 1
        line = 7002 + (kind in ("quoted line break", "blank line"))
        assert [e["line"] for e in receipt["errors"]] == [line]
