"""Every file of the malformed corpus has one exact expected outcome (tests/data/corpus)."""

from __future__ import annotations

import pytest
import yaml

from .conftest import CORPUS, Env

EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_outcome(env: Env, name: str) -> None:
    want = EXPECTED[name]
    env.drop(name, (CORPUS / name).read_bytes())
    receipt = env.pipeline().process(name)

    assert receipt.status == want["status"], receipt.reason
    counts = (receipt.rows_read, receipt.rows_loaded, receipt.rows_rejected, receipt.rows_duplicate)
    assert counts == (want["read"], want["loaded"], want["rejected"], want["duplicate"])
    assert receipt.reconciles
    got = [(e["line"], e["column"], e["reason"]) for e in receipt.errors]
    expected_errors = want.get("errors", [])
    assert len(got) == len(expected_errors), got
    for (line, column, reason), (wline, wcolumn, wphrase) in zip(got, expected_errors, strict=True):
        assert (line, column) == (wline, wcolumn)
        assert wphrase in reason
    if "reason" in want:
        assert want["reason"] in (receipt.reason or "")
    assert env.where(name) == [want["dest"]]
    assert len(env.notes.sent) == 1 and env.notes.sent[0].status == want["status"]


def test_rejected_rows_report_lists_every_rejected_row_and_defuses_formulas(env: Env) -> None:
    env.drop("formula.csv", (CORPUS / "formula.csv").read_bytes())
    receipt = env.pipeline().process("formula.csv")

    assert receipt.rejected_rows_report
    assert "formula.rejected.csv" in env.names("errors")
    text = env.read("errors", "formula.rejected.csv").decode()
    lines = text.splitlines()
    assert lines[0] == "file,line,column,value,reason"
    assert len(lines) == 3
    assert "'=HYPERLINK" in text and "'@SUM(1)" in text
    assert ",=HYPERLINK" not in text


def test_rows_land_typed(env: Env) -> None:
    env.drop("good.csv", (CORPUS / "good.csv").read_bytes())
    receipt = env.pipeline().process("good.csv")

    assert receipt.status == "loaded"
    items = env.items()
    assert [(i["student_id"], i["course"]) for i in items] == [
        ("A10001", "Military Medicine"),
        ("A10002", "Modern Forensics"),
        ("A10002", "Science Of Deduction"),
    ]
    first = items[0]
    assert first["credits"] == "5" and first["grade"] == "3.5" and first["enrolled"] == "2026-09-01"
    assert items[1].get("credits") is None  # missing values are not stored as text
