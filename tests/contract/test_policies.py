"""Error and duplicate policies, reruns and moves: the same behaviour on every adapter pair."""

from __future__ import annotations

import json

import pytest

from .conftest import CORPUS, Env

HEADER = "student_id,fname,lname,course,credits,grade,enrolled\n"


def csv(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\n" for r in rows)).encode()


GOOD = ("A10001,John,Watson,Medicine,5,,", "A10002,Sherlock,Holmes,Deduction,10,,")


def test_reject_file_writes_nothing_and_moves_the_file_to_errors(env: Env) -> None:
    env.drop("batch.csv", csv(*GOOD, "A1003,Bad,Row,Opera,1,,"))
    receipt = env.pipeline(env.config(on_error="reject_file")).process("batch.csv")

    assert receipt.status == "rejected"
    assert (receipt.rows_read, receipt.rows_loaded, receipt.rows_rejected) == (3, 0, 3)
    assert receipt.rows_invalid == 1
    assert receipt.errors[0]["line"] == 4 and receipt.errors[0]["column"] == "student_id"
    assert env.items() == []
    assert env.where("batch.csv") == ["errors"]
    assert "batch.rejected.csv" in env.names("errors")
    beside = json.loads(env.read("errors", "batch.receipt.json"))
    assert beside["status"] == "rejected" and beside["rows_invalid"] == 1
    assert beside["rejected_rows_report"] == receipt.rejected_rows_report


def test_reject_file_lists_every_invalid_row_not_just_the_first(env: Env) -> None:
    env.drop("batch.csv", csv("X1,John,Watson,Medicine,5,,", *GOOD, "X2,Bad,Row,Opera,1,,"))
    receipt = env.pipeline(env.config(on_error="reject_file")).process("batch.csv")

    assert [e["line"] for e in receipt.errors] == [2, 5]
    report = env.read("errors", "batch.rejected.csv").decode().splitlines()
    assert len(report) == 3


@pytest.mark.parametrize(
    ("limit", "status"),
    [
        (1, "loaded_with_rejects"),
        (0, "rejected"),
        ("34%", "loaded_with_rejects"),
        ("33%", "rejected"),
    ],
)
def test_max_rejected_is_a_count_or_a_percentage(env: Env, limit: object, status: str) -> None:
    env.drop("batch.csv", csv(*GOOD, "A1003,Bad,Row,Opera,1,,"))
    receipt = env.pipeline(env.config(on_error="skip_rows", max_rejected=limit)).process(
        "batch.csv"
    )

    assert receipt.status == status
    assert len(env.items()) == (2 if status == "loaded_with_rejects" else 0)


@pytest.mark.parametrize(
    ("policy", "fname", "loaded", "dups", "rejected"),
    [
        ("last_wins", "Johnny", 2, 1, 0),
        ("first_wins", "John", 2, 1, 0),
        ("reject", "John", 2, 0, 1),
    ],
)
def test_duplicate_keys_follow_the_policy_and_are_counted(
    env: Env, policy: str, fname: str, loaded: int, dups: int, rejected: int
) -> None:
    env.drop("dups.csv", (CORPUS / "duplicates.csv").read_bytes())
    config = env.config(duplicates=policy, max_duplicates=1)  # 1 of 3 rows repeats on purpose
    receipt = env.pipeline(config).process("dups.csv")

    assert (
        receipt.rows_read,
        receipt.rows_loaded,
        receipt.rows_duplicate,
        receipt.rows_rejected,
    ) == (3, loaded, dups, rejected)
    assert receipt.reconciles
    watson = [i for i in env.items() if i["student_id"] == "A10001"]
    assert len(watson) == 1 and watson[0]["fname"] == fname
    if policy == "reject":
        assert receipt.errors[0]["line"] == 3
        assert "duplicate key" in receipt.errors[0]["reason"]


def test_duplicates_across_batches_are_found(env: Env) -> None:
    rows = [f"A{10000 + i},N{i},L,C{i % 3},1,," for i in range(30)]
    rows.append("A10004,Again,L,C1,1,,")  # repeats line 6's key, several batches later
    env.drop("many.csv", csv(*rows))
    config = env.config(batch_size=4, duplicates="first_wins", max_duplicates=1)
    receipt = env.pipeline(config).process("many.csv")

    assert (receipt.rows_loaded, receipt.rows_duplicate) == (30, 1)
    assert len(env.items()) == 30
    assert [i["fname"] for i in env.items() if i["student_id"] == "A10004"] == ["N4"]


def test_the_same_content_twice_is_loaded_once_and_notified_once(env: Env) -> None:
    data = csv(*GOOD)
    env.drop("a.csv", data)
    first = env.pipeline().process("a.csv")
    env.drop("a.csv", data)
    second = env.pipeline().process("a.csv")

    assert first.status == "loaded" and second.status == "already_processed"
    assert len(env.notes.sent) == 1
    assert env.where("a.csv") == ["archive"]
    assert env.names("inbound") == []  # the second drop left inbound too
    assert all(env.read("archive", n) == data for n in env.names("archive"))
    assert len(env.items()) == 2


def test_force_reprocesses_the_same_content(env: Env) -> None:
    data = csv(*GOOD)
    env.drop("a.csv", data)
    env.pipeline().process("a.csv")
    env.drop("a.csv", data)
    again = env.pipeline().process("a.csv", force=True)

    assert again.status == "loaded" and again.rows_loaded == 2
    assert len(env.notes.sent) == 2
    assert len(env.items()) == 2


def test_changed_content_under_the_same_name_is_loaded_and_never_overwrites(env: Env) -> None:
    env.drop("a.csv", csv(GOOD[0]))
    env.pipeline().process("a.csv")
    env.drop("a.csv", csv(GOOD[1]))
    second = env.pipeline().process("a.csv")

    assert second.status == "loaded"
    archived = env.names("archive")
    assert len(archived) == 2 and "a.csv" in archived
    assert sorted(env.read("archive", n) for n in archived) == sorted([csv(GOOD[0]), csv(GOOD[1])])
    assert len(env.items()) == 2


def test_files_in_folders_keep_their_path(env: Env) -> None:
    env.drop("2026/11/partner a.csv", csv(*GOOD))
    receipt = env.pipeline().process("2026/11/partner a.csv")

    assert receipt.status == "loaded"
    assert env.names("archive") == ["2026/11/partner a.csv"]


def test_pending_lists_csv_and_gzip_oldest_first(env: Env) -> None:
    env.drop("first.csv", csv(*GOOD))
    env.drop("second.csv.gz", (CORPUS / "good.csv.gz").read_bytes())
    env.drop("notes.txt", b"not a drop")
    names = [ref.name for ref in env.pipeline().pending()]

    assert set(names) == {"first.csv", "second.csv.gz"}


def test_validate_is_a_dry_run(env: Env) -> None:
    env.drop("batch.csv", (CORPUS / "bad_values.csv").read_bytes())
    receipt = env.pipeline().process("batch.csv", dry_run=True)

    assert receipt.dry_run and receipt.status == "would_load_with_rejects"
    assert (receipt.rows_read, receipt.rows_loaded, receipt.rows_rejected) == (5, 1, 4)
    assert env.where("batch.csv") == ["inbound"]
    assert env.items() == [] and env.notes.sent == []


def test_validate_counts_duplicates_like_a_load(env: Env) -> None:
    env.drop("dups.csv", (CORPUS / "duplicates.csv").read_bytes())
    receipt = env.pipeline(env.config(duplicates="reject", on_error="reject_file")).process(
        "dups.csv", dry_run=True
    )

    assert receipt.status == "rejected"
    assert receipt.errors[0]["line"] == 3


def test_extra_columns_can_be_ignored(env: Env) -> None:
    env.drop("extra.csv", (CORPUS / "header_unknown_column.csv").read_bytes())
    receipt = env.pipeline(env.config(extra_columns="ignore")).process("extra.csv")

    assert receipt.status == "loaded" and receipt.rows_loaded == 1
    assert "house" not in env.items()[0]
