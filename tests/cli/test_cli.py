"""The batchdrop command as a user runs it: output, exit codes, and no tracebacks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .conftest import EXAMPLE, bd


def test_run_once_loads_the_example_and_reports_it(example: Path) -> None:
    r = bd("run", "--once", cwd=example)

    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert (
        lines[0]
        == "loaded_with_rejects  students.csv  12 read · 10 loaded · 2 rejected · 0 duplicate"
    )
    assert "line 10, column 'student_id': does not match the pattern" in r.out
    # the receipt is printed once: the console notifier does not repeat it on stderr
    assert r.out.count("  students.csv  ") == 1 and r.err == ""
    assert (example / "archive" / "students.csv").exists()
    assert not (example / "inbound" / "students.csv").exists()
    report = (example / "errors" / "students.rejected.csv").read_text().splitlines()
    assert report[1:] == [
        "students.csv,10,student_id,A1006,does not match the pattern A[0-9]{5}",
        "students.csv,13,course,,a value is required",
    ]
    receipts = [json.loads(line) for line in (example / "receipts.jsonl").read_text().splitlines()]
    assert [m["receipt"]["status"] for m in receipts] == ["loaded_with_rejects"]
    assert receipts[0]["subject"].startswith("batchdrop: students.csv")


def test_get_answers_both_access_patterns(example: Path) -> None:
    bd("run", "--once", cwd=example)

    one = bd("get", "A10002", "Modern Forensics", "--json", cwd=example)
    assert one.code == 0
    assert json.loads(one.out) == {
        "student_id": "A10002",
        "fname": "Sherlock",
        "lname": "Holmes",
        "course": "Modern Forensics",
    }
    part = bd("get", "A10002", "--json", cwd=example)
    courses = [json.loads(line)["course"] for line in part.out.splitlines()]
    assert courses == ["Chemistry, Advanced", "Modern Forensics", "Science Of Deduction"]
    prefix = bd("get", "A10002", "--begins-with", "M", "--json", cwd=example)
    assert [json.loads(x)["course"] for x in prefix.out.splitlines()] == ["Modern Forensics"]
    missing = bd("get", "A99999", cwd=example)
    assert missing.code == 1 and "no item with that key" in missing.err


def test_second_run_of_the_same_file_is_skipped_without_notification(example: Path) -> None:
    bd("run", "--once", cwd=example)
    (example / "inbound" / "students.csv").write_bytes((EXAMPLE / "students.csv").read_bytes())
    r = bd("run", "--once", cwd=example)

    assert r.code == 0
    assert "already_processed" in r.out
    assert len((example / "receipts.jsonl").read_text().splitlines()) == 1
    forced = bd("process", str(example / "archive" / "students.csv"), "--force", cwd=example)
    assert forced.code == 0 and "loaded_with_rejects" in forced.out
    assert len((example / "receipts.jsonl").read_text().splitlines()) == 2


def test_runs_lists_the_ledger(example: Path) -> None:
    bd("run", "--once", cwd=example)
    r = bd("runs", "--json", cwd=example)

    runs = [json.loads(line) for line in r.out.splitlines()]
    assert len(runs) == 1
    assert runs[0]["file"] == "students.csv" and runs[0]["state"] == "done"
    assert (runs[0]["rows_read"], runs[0]["rows_loaded"], runs[0]["rows_rejected"]) == (12, 10, 2)
    assert runs[0]["version"].startswith("sha256:")
    text = bd("runs", cwd=example)
    assert "students.csv" in text.out and "loaded_with_rejects" in text.out


def test_validate_is_a_dry_run_with_exit_code(example: Path) -> None:
    ok = bd("validate", "inbound/students.csv", cwd=example)
    assert ok.code == 0 and ok.out.startswith(
        "valid_with_rejects  students.csv  12 read · 10 would"
    )
    assert "loaded" not in ok.out and "load" not in ok.out.replace("10 would load", "")
    assert (example / "inbound" / "students.csv").exists()
    assert (
        not (example / "students.db").exists()
        or not sqlite3.connect(example / "students.db")
        .execute("SELECT name FROM sqlite_master WHERE name = 'students'")
        .fetchall()
    )

    bad = example / "bad.csv"
    bad.write_text("student_id,fname,lname,course\nA1,x,y,z\nA2,x,y,z\n")
    rejected = bd("validate", str(bad), "--json", cwd=example)
    assert rejected.code == 1
    receipt = json.loads(rejected.out)
    assert receipt["status"] == "rejected" and receipt["rows_invalid"] == 2


def test_process_exit_code_1_when_rejected(example: Path) -> None:
    bad = example / "inbound" / "bad.csv"
    bad.write_text("student_id,fname,lname\nA10001,x,y\n")
    r = bd("process", "bad.csv", cwd=example)

    assert r.code == 1
    assert "bad header: missing column 'course'" in r.out
    assert (example / "errors" / "bad.csv").exists()
    assert "Traceback" not in r.err


def test_config_errors_name_the_key_and_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "batchdrop.yaml"
    base = (EXAMPLE / "batchdrop.yaml").read_text()
    cases = {
        "on_error: skip_rows": ("on_error: skip_some", "on_error: got 'skip_some'"),
        "duplicates: last_wins": ("duplicates: newest", "duplicates: got 'newest'"),
        "partition_key: student_id": ("partition_key: sid", "'sid' is not a field"),
        "max_rejected: 20%": ("max_rejected: lots", "max_rejected: must be a count"),
        "suffix: .csv": ("sufix: .csv", "sufix: is not a batchdrop setting"),
    }
    for old, (new, message) in cases.items():
        cfg.write_text(base.replace(old, new))
        r = bd("runs", cwd=tmp_path)
        assert r.code == 2, (new, r.err)
        assert message in r.err, (new, r.err)
        assert "Traceback" not in r.err
    cfg.write_text("inbound: [unclosed\n")
    r = bd("runs", cwd=tmp_path)
    assert r.code == 2 and "not valid YAML at line" in r.err
    r = bd("--config", "nope.yaml", "runs", cwd=tmp_path)
    assert r.code == 2 and "no config file at nope.yaml" in r.err


def test_missing_file_is_a_usage_error(example: Path) -> None:
    r = bd("process", "nope.csv", cwd=example)
    assert r.code == 2 and "nope.csv: no such file" in r.err and "Traceback" not in r.err


def test_every_command_has_help() -> None:
    r = bd("--help", cwd=EXAMPLE)
    assert r.code == 0
    for command in (
        "init",
        "validate",
        "process",
        "run",
        "runs",
        "get",
        "worker",
        "template",
        "package",
        "deploy",
        "destroy",
        "serve",
    ):
        assert command in r.out
        sub = bd(command, "--help", cwd=EXAMPLE)
        assert sub.code == 0, command
        assert len(sub.out.split("\n\n")[1].strip()) > 20, f"{command} needs a description"


def test_local_mode_never_imports_boto3(example: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from batchdrop.cli import main; sys.argv=['batchdrop','run','--once'];"
        "\ntry: main()\nexcept SystemExit: pass\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=example, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (example / "archive" / "students.csv").exists()


def test_a_missing_optional_library_names_the_extra_to_install(example: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['uvicorn'] = None\n"  # as if batchdrop[api] were not installed
        "from batchdrop.cli import main; sys.argv = ['batchdrop', 'serve']; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=example, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "needs uvicorn, which is not installed: pip install 'batchdrop[api]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_watch_mode_waits_for_a_file_to_settle_and_ignores_hidden_names(example: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    (example / "inbound" / "students.csv").rename(example / "inbound" / ".students.csv.part")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchdrop",
            "run",
            "--interval",
            "0.2",
            "--settle",
            "1.5",
            "--json",
        ],
        cwd=example,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        assert (example / "inbound" / ".students.csv.part").exists()  # a partial upload: untouched
        os.rename(example / "inbound" / ".students.csv.part", example / "inbound" / "students.csv")
        os.utime(example / "inbound" / "students.csv")  # just written
        time.sleep(0.8)
        assert (example / "inbound" / "students.csv").exists()  # not settled yet
        deadline = time.time() + 20
        while (example / "inbound" / "students.csv").exists() and time.time() < deadline:
            time.sleep(0.2)
        assert (example / "archive" / "students.csv").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert json.loads(out.splitlines()[0])["status"] == "loaded_with_rejects"
