"""A pass over a file of plain strings for a DynamoDB table reads its keys straight from the
text too (rawkeys.py), the row check clearing each block from its longest line
(``ItemCheck.clear_text``), and must end exactly as the csv reader's pass: the same receipt
(write units included, for ``validate``) and the same rejected-rows report, on files whose rows
sit just under and just over DynamoDB's limits (a sort key of 1024 bytes, a partition key of
2048, an item of 400 KB, an item of 1 KB for the units), in ASCII and in two-byte UTF-8.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from batchdrop.config import Config, parse_config
from batchdrop.passes import two_pass
from batchdrop.ports import FileRef
from batchdrop.tables.dynamodb_items import ItemCodec
from batchdrop.tables.dynamodb_units import ItemCheck

from .test_raw_pass import FIELDS, Spy, partner_file, validate

DYNAMO = {"url": "dynamodb://t", "partition_key": "student_id", "sort_key": "course"}
ROOM = {"max_field_size": 500_000}


def near_limits(seed: int) -> bytes:
    """A partner file of 56,000 rows with clusters of rows about one of DynamoDB's limits (in
    ASCII or in two-byte characters, 3 bytes under it to 3 over), each cluster in a block of
    its own among blocks of ordinary rows; the rows of about 400 KB, a block each, are three
    (more blocks in a row that the text path cannot read send the pass to the csv reader)."""
    rng = random.Random(seed)
    lines = partner_file(56_000, seed, missing=0).decode().splitlines(keepends=True)
    clusters = [(kind, char) for kind in range(3) for char in ("x", "é")]  # é: 2 bytes
    rng.shuffle(clusters)
    clusters.insert(rng.randrange(len(clusters) + 1), (3, "x"))
    for n, (kind, char) in enumerate(clusters):
        for near in range(-1, 2) if kind == 3 else range(-3, 4):
            i = 2500 + 7500 * n + near
            sid, fname, lname, course = f"A{i:05d}", "Mary", "Smith", "Art"
            if kind == 0:  # a sort key of about 1024 bytes
                course = char * ((1024 + near) // len(char.encode()))
            elif kind == 1:  # a partition key of about 2048 bytes
                sid = char * ((2048 + near) // len(char.encode()))
            elif kind == 2:  # an item of about 1 KB: one write unit, or two
                fname = char * ((1024 - len(f"{sid}SmithArtstudent_idfnamelnamecourse") + near)
                                // len(char.encode()))  # fmt: skip
            else:  # an item of about 400 KB
                lname = "x" * (400 * 1024 - len(f"{sid}MaryArtstudent_idfnamelnamecourse") + near)
            lines[i] = f"{sid},{fname},{lname},{course}\n"
    return "".join(lines).encode()


def first_pass(
    config: Config, store: Any, ref: FileRef, receipt: Any, report: Any, *_: Any
) -> None:
    """``process``'s passes without a load: its row check does not count units."""
    check = ItemCodec(config).check
    assert isinstance(check, ItemCheck) and not check.counting
    two_pass(config, store, ref, receipt, report, None, check, None, None)


def checked(data: bytes, raw: bool) -> tuple[dict[str, Any], bytes]:
    """The receipt and report of ``process``'s first pass."""
    return validate(data, raw, passes=first_pass, table=DYNAMO, csv=ROOM)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_validate_counts_and_rejects_as_the_csv_reader_does(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = near_limits(seed)
    spy = Spy(monkeypatch)
    fast = validate(data, raw=True, table=DYNAMO, csv=ROOM)
    assert spy.rows > 56_000 / 2  # the text path read the ordinary blocks
    slow = validate(data, raw=False, table=DYNAMO, csv=ROOM)
    assert fast == slow
    receipt = fast[0]
    assert receipt["rows_rejected"] > 0 and receipt["write_units"] > receipt["rows_loaded"]
    reasons = [e["reason"] for e in receipt["errors"]]
    assert any("for a sort key" in r for r in reasons)
    assert any("for a partition key" in r for r in reasons)
    assert any("400 KB" in r for r in reasons)


@pytest.mark.parametrize("seed", [4, 5])
def test_the_first_pass_of_a_load_rejects_as_the_csv_reader_does(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = near_limits(seed)
    spy = Spy(monkeypatch)
    fast = checked(data, raw=True)
    assert spy.rows > 56_000 / 2
    assert fast == checked(data, raw=False)
    assert fast[0]["rows_rejected"] > 0


def test_ordinary_blocks_are_cleared_and_near_ones_are_not() -> None:
    config = parse_config(
        {
            "inbound": "i",
            "archive": "a",
            "errors": "e",
            "table": DYNAMO,
            "schema": {"fields": FIELDS},
        },
        environ={},
    )
    check = ItemCodec(config).check
    assert isinstance(check, ItemCheck)
    block = "A1,Mary,Smith,Art\n" * 1000
    assert check.clear_text(block, 1000)
    # a sort key of 1024 bytes passes DynamoDB, but a line that long may hold one over it
    assert not check.clear_text(block + "A2,M,S," + "x" * 1020 + "\n", 1001)
    assert not check.clear_text(block + "A2,M,S," + "é" * 300 + "\n", 1001)  # 4 bytes a char
    check.counting = True
    assert check.clear_text(block, 1000) and check.units == check.passed == 1000
    # an item that may pass 1 KB takes two units: counted row by row instead
    assert not check.clear_text(block + "A2," + "x" * 990 + ",S,Art\n", 1001)
    assert check.units == 1000


def test_an_empty_key_is_refused_when_empty_is_not_a_missing_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no missing values, "" is a key the schema takes but DynamoDB refuses: the text
    path still reads the block, and the row check finds the row."""
    lines = partner_file(8000, seed=6, missing=0).decode().splitlines(keepends=True)
    lines[5000] = "A99999,Mary,Smith,\n"
    data = "".join(lines).encode()
    schema = {"fields": FIELDS, "missingValues": []}
    spy = Spy(monkeypatch)
    fast = validate(data, raw=True, table=DYNAMO, schema=schema)
    assert spy.rows > 8000 / 2
    assert fast == validate(data, raw=False, table=DYNAMO, schema=schema)
    assert [(e["line"], e["column"]) for e in fast[0]["errors"]] == [(5001, "course")]
    assert "cannot be empty" in fast[0]["errors"][0]["reason"]
