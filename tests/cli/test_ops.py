"""``status``, ``retry`` and ``redrive`` on the local example: what happened and what waits,
a failed file run again (from inbound, or set aside in errors), and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from batchdrop.cli import cli
from batchdrop.cli_ops import parse_since
from batchdrop.errors import ConfigError
from batchdrop.tables import sqlite_load

from .conftest import bd

GOOD = "student_id,fname,lname,course\nA20001,Grace,Hopper,Compilers\nA20002,Alan,Turing,Logic\n"


@pytest.fixture
def poisoned(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """While ``on``, the load of any file named ``poison*`` fails as a bug would."""
    state = {"on": True}
    write = sqlite_load.SqliteLoad.write

    def write_or_fail(self: Any, rows: Any, lines: Any) -> Any:
        if state["on"] and self.claim.ref.name.startswith("poison"):
            raise RuntimeError("a bug that only this file meets")
        return write(self, rows, lines)

    monkeypatch.setattr(sqlite_load.SqliteLoad, "write", write_or_fail)
    return state


def run(example: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(example / "batchdrop.yaml"), *args])


def status(example: Path, *args: str) -> dict[str, Any]:
    result = run(example, "status", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_status_counts_files_rows_failures_and_what_waits(
    example: Path, poisoned: dict[str, bool]
) -> None:
    (example / "batchdrop.yaml").write_text(
        (example / "batchdrop.yaml").read_text() + "\nmax_attempts: 2\n"
    )
    (example / "inbound" / "poison.csv").write_text(GOOD)
    run(example, "run", "--once")
    (example / "inbound" / "later.csv").write_text(GOOD)  # waiting, not taken yet
    s = status(example)
    assert s["files"] == {"loaded_with_rejects": 1, "failed": 1}
    assert (s["rows_loaded"], s["rows_rejected"]) == (10, 2)
    (failure,) = s["failures"]
    assert failure["file"] == "poison.csv" and failure["where"] == "inbound"
    assert failure["reason"] == "a bug that only this file meets"
    assert s["inbound"] == {"waiting": 2, "files": ["poison.csv", "later.csv"]}
    assert s["set_aside"] == []

    (example / "inbound" / "later.csv").unlink()
    run(example, "run", "--once")  # the second failure sets it aside
    s = status(example)
    assert s["files"] == {"loaded_with_rejects": 1, "failed": 1}  # a file's latest run counts
    assert s["failed_runs"] == 2 and s["runs"] == 3
    (failure,) = s["failures"]
    assert failure["where"] == "errors" and failure["set_aside"]
    assert "failed 2 times" in failure["reason"]
    assert s["set_aside"] == ["poison.csv"] and s["inbound"]["waiting"] == 0

    text = run(example, "status")
    assert text.exit_code == 0
    assert "1 loaded with rejects · 1 failed" in text.output
    assert "10 loaded · 2 rejected" in text.output
    assert "1 file(s) in errors: poison.csv" in text.output
    assert failure["run_id"] in text.output and "errors" in text.output

    # nothing ran since a moment in the future
    empty = status(example, "--since", "2099-01-01")
    assert empty["files"] == {} and empty["runs"] == 0 and empty["failures"] == []


def test_retry_runs_a_set_aside_file_again_from_errors(
    example: Path, poisoned: dict[str, bool]
) -> None:
    (example / "batchdrop.yaml").write_text(
        (example / "batchdrop.yaml").read_text() + "\nmax_attempts: 1\n"
    )
    (example / "inbound" / "poison.csv").write_text(GOOD)
    run(example, "run", "--once")
    assert (example / "errors" / "poison.csv").exists()
    (failure,) = status(example)["failures"]

    poisoned["on"] = False  # the cause is fixed
    result = run(example, "retry", failure["run_id"])
    assert result.exit_code == 0, result.output
    assert "loaded  poison.csv  2 read · 2 loaded" in result.output
    assert (example / "archive" / "poison.csv").read_text() == GOOD
    assert not (example / "errors" / "poison.csv").exists()
    got = run(example, "get", "A20001", "--json")
    assert json.loads(got.stdout)["course"] == "Compilers"
    s = status(example)
    assert s["failures"] == [] and s["files"] == {"loaded_with_rejects": 1, "loaded": 1}

    again = run(example, "retry", failure["run_id"])
    assert isinstance(again.exception, ConfigError)
    assert "neither in" in str(again.exception) and "a later run may have loaded it" in str(
        again.exception
    )


def test_retry_runs_a_failed_file_still_in_inbound_now(
    example: Path, poisoned: dict[str, bool]
) -> None:
    (example / "inbound" / "poison.csv").write_text(GOOD)
    run(example, "run", "--once")
    (failure,) = status(example)["failures"]
    assert failure["where"] == "inbound"
    still = run(example, "retry", failure["run_id"], "--json")  # not fixed yet: fails again
    assert still.exit_code == 3
    assert json.loads(still.stdout)["attempt"] == 2
    poisoned["on"] = False
    (failure,) = status(example)["failures"]
    done = run(example, "retry", failure["run_id"], "--json")
    assert done.exit_code == 0, done.output
    receipt = json.loads(done.stdout)
    assert (receipt["status"], receipt["rows_loaded"], receipt["attempt"]) == ("loaded", 2, 3)
    assert not (example / "inbound" / "poison.csv").exists()


def test_errors_are_one_line_without_a_traceback(example: Path) -> None:
    r = bd("run", "--once", cwd=example)
    loaded = json.loads(bd("runs", "--json", cwd=example).out.splitlines()[0])["run_id"]
    cases = [
        (
            ("retry", "20990101T000000.000Z-000000"),
            "no run 20990101T000000.000Z-000000 in the ledger",
        ),
        (("retry", loaded), f"run {loaded} did not fail: students.csv was loaded with rejects"),
        (("redrive",), "redrive moves a deployed stack's dead-letter messages: name the stack"),
        (("status", "--since", "yesterday"), "--since 'yesterday': give a duration"),
    ]
    for args, message in cases:
        r = bd(*args, cwd=example)
        assert r.code == 2, (args, r.err)
        assert message in r.err, (args, r.err)
        assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err
    r = bd("retry", loaded, "--here", cwd=example)  # a usage error: with the usage
    assert r.code == 2 and "Error: --here goes with --stack" in r.err and "Traceback" not in r.err


def test_local_commands_never_import_boto3(example: Path) -> None:
    bd("run", "--once", cwd=example)
    code = (
        "import sys\n"
        "from batchdrop import cli\n"
        "sys.argv = ['batchdrop', 'status']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=example, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "1 loaded with rejects" in done.stdout


def test_each_command_has_help_that_explains() -> None:
    for name, words in (
        ("status", ["files by status", "dead-letter", "--since", "Examples"]),
        ("redrive", ["dead-letter queue", "--dry-run", "--limit", "Examples"]),
        ("retry", ["set aside", "--here", "--stack", "Examples"]),
    ):
        out = CliRunner().invoke(cli, [name, "--help"]).output
        for w in words:
            assert w in out, (name, w)
    listing = CliRunner().invoke(cli, ["--help"]).output
    assert all(n in listing for n in ("status", "redrive", "retry"))


@pytest.mark.parametrize(
    ("text", "ago"),
    [("24h", 86400), ("90m", 5400), ("7d", 7 * 86400), ("2w", 14 * 86400)],
)
def test_since_takes_a_duration(text: str, ago: int) -> None:
    assert parse_since(text, now=1_000_000_000.0) == 1_000_000_000.0 - ago


def test_since_takes_a_date_or_time_in_utc_unless_it_says() -> None:
    assert parse_since("2026-11-28") == 1795824000.0
    assert parse_since("2026-11-28T06:00") == 1795824000.0 + 6 * 3600
    assert parse_since("2026-11-28T06:00+01:00") == 1795824000.0 + 5 * 3600
