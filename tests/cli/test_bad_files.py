"""One bad file never blocks the others: corrupt or truncated compression, entries that are not
regular files, and a file that keeps failing are each settled on their own, and the run goes on.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import Result, bd

POISON = Path(__file__).with_name("poison.py")
GOOD = "student_id,fname,lname,course\nA20001,Ada,Lovelace,Engines\nA20002,Alan,Turing,Machines\n"


def receipts(folder: Path) -> list[dict]:
    path = folder / "receipts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["receipt"] for line in path.read_text().splitlines()]


def run_poisoned(folder: Path) -> Result:
    """`run --once --json` with the load of any file named poison* failing as a bug would."""
    proc = subprocess.run(
        [sys.executable, str(POISON), "run", "--once", "--json"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def oldest_first(folder: Path, names: list[str]) -> None:
    """Give the entries increasing mtimes, so the run takes them in this order."""
    for i, name in enumerate(names):
        t = time.time() - 100 + i
        os.utime(folder / name, (t, t), follow_symlinks=False)


def test_bad_entries_ahead_of_good_files_are_rejected_and_the_good_ones_load(
    example: Path, tmp_path_factory
) -> None:
    inbound = example / "inbound"
    (inbound / "students.csv").unlink()
    outside = tmp_path_factory.mktemp("outside") / "secret.csv"
    outside.write_text(GOOD)
    (inbound / "a-corrupt.csv.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"not deflate data" * 50)
    (inbound / "b-truncated.csv.gz").write_bytes(gzip.compress(GOOD.encode() * 200)[:-40])
    (inbound / "c-link.csv").symlink_to(outside)
    os.mkfifo(inbound / "d-fifo.csv")
    (inbound / "e-good.csv").write_text(GOOD)
    names = ["a-corrupt.csv.gz", "b-truncated.csv.gz", "c-link.csv", "d-fifo.csv", "e-good.csv"]
    oldest_first(inbound, names)

    r = bd("run", "--once", "--json", cwd=example, timeout=60)
    assert r.code == 1, r.err  # rejected files, nothing retryable
    assert "Traceback" not in r.err and "internal error" not in r.err
    out = {x["file"]: x for x in map(json.loads, r.out.splitlines())}
    assert {n: out[n]["status"] for n in names} == {
        "a-corrupt.csv.gz": "rejected",
        "b-truncated.csv.gz": "rejected",
        "c-link.csv": "rejected",
        "d-fifo.csv": "rejected",
        "e-good.csv": "loaded",
    }
    assert "corrupt or truncated" in out["a-corrupt.csv.gz"]["reason"]
    assert "ended before the end-of-stream marker" in out["b-truncated.csv.gz"]["reason"]
    assert "not a regular file but a symbolic link" in out["c-link.csv"]["reason"]
    assert "not a regular file but a FIFO" in out["d-fifo.csv"]["reason"]
    assert out["e-good.csv"]["rows_loaded"] == 2

    assert list(inbound.iterdir()) == []
    errors = example / "errors"
    assert (errors / "c-link.csv").is_symlink()  # the link itself, never what it points to
    assert os.readlink(errors / "c-link.csv") == str(outside)
    assert outside.read_text() == GOOD
    assert (errors / "d-fifo.csv").is_fifo()
    for name in names[:4]:
        assert (errors / name).exists() or (errors / name).is_symlink()
        placed = errors / (name.split(".")[0] + ".receipt.json")
        assert json.loads(placed.read_text())["status"] == "rejected"
        umask = os.umask(0)
        os.umask(umask)
        assert placed.stat().st_mode & 0o777 == 0o666 & ~umask  # for people, not private
    assert sorted(x["file"] for x in receipts(example)) == names  # one notification each

    again = bd("run", "--once", cwd=example)
    assert again.code == 0 and "nothing waiting" in again.err
    assert len(receipts(example)) == 5


def test_a_corrupt_file_gets_a_clear_error_from_validate_and_process(example: Path) -> None:
    bad = example / "bad.csv.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 100)
    r = bd("validate", str(bad), cwd=example)
    assert r.code == 1 and "Traceback" not in r.err
    assert "corrupt or truncated" in r.out
    r = bd("process", str(bad), cwd=example)
    assert r.code == 1 and "Traceback" not in r.err
    assert (example / "errors" / "bad.csv.gz").exists()


def test_a_file_that_keeps_failing_is_set_aside_after_max_attempts(example: Path) -> None:
    cfg = example / "batchdrop.yaml"
    cfg.write_text(cfg.read_text() + "\nmax_attempts: 3\n")
    inbound = example / "inbound"
    (inbound / "poison.csv").write_text(GOOD)
    oldest_first(inbound, ["poison.csv", "students.csv"])

    first = run_poisoned(example)
    assert first.code == 3, first.err  # failed, retryable
    assert "Traceback" not in first.err
    out = {x["file"]: x for x in map(json.loads, first.out.splitlines())}
    assert out["poison.csv"]["status"] == "failed"
    assert out["poison.csv"]["attempt"] == 1 and not out["poison.csv"]["set_aside"]
    assert "a bug that only this file meets" in out["poison.csv"]["reason"]
    assert out["students.csv"]["status"] == "loaded_with_rejects"  # the next file went on
    assert (inbound / "poison.csv").exists()

    for attempt in (2, 3):
        (receipt,) = map(json.loads, run_poisoned(example).out.splitlines())
        assert receipt["attempt"] == attempt
    assert receipt["set_aside"] and receipt["status"] == "failed"
    assert "failed 3 times" in receipt["reason"]
    assert not (inbound / "poison.csv").exists()
    assert (example / "errors" / "poison.csv").read_text() == GOOD
    set_aside = json.loads((example / "errors" / "poison.receipt.json").read_text())
    assert set_aside["set_aside"] is True

    sent = [x for x in receipts(example) if x["file"] == "poison.csv"]
    assert [x["attempt"] for x in sent] == [1, 2, 3]  # one notification per attempt, no more
    r = bd("run", "--once", cwd=example)
    assert r.code == 0 and "nothing waiting" in r.err

    # Dropped again after a fix, the same content starts counting from 1 and loads.
    (inbound / "poison2.csv").write_text(GOOD)
    (example / "errors" / "poison.csv").rename(inbound / "poison.csv")
    r = bd("run", "--once", "--json", cwd=example)
    loaded = {x["file"]: x for x in map(json.loads, r.out.splitlines())}
    assert loaded["poison.csv"]["status"] == "loaded" and loaded["poison.csv"]["attempt"] == 1


def test_watch_mode_survives_a_failing_file_and_sets_it_aside(example: Path) -> None:
    cfg = example / "batchdrop.yaml"
    cfg.write_text(cfg.read_text() + "\nmax_attempts: 3\n")
    inbound = example / "inbound"
    (inbound / "poison.csv").write_text(GOOD)
    oldest_first(inbound, ["poison.csv", "students.csv"])
    proc = subprocess.Popen(
        [sys.executable, str(POISON), "run", "--interval", "0.05", "--settle", "0", "--json"],
        cwd=example,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (example / "errors" / "poison.csv").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the failing file was never set aside"
            time.sleep(0.1)
        (inbound / "later.csv").write_text(GOOD.replace("A2000", "A3000"))
        while (inbound / "later.csv").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "a file dropped later was never taken"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err
    statuses = [(x["file"], x["status"], x["attempt"]) for x in map(json.loads, out.splitlines())]
    assert [s for s in statuses if s[0] == "poison.csv"] == [
        ("poison.csv", "failed", 1),
        ("poison.csv", "failed", 2),
        ("poison.csv", "failed", 3),
    ]
    assert ("later.csv", "loaded", 1) in statuses
    assert ("students.csv", "loaded_with_rejects", 1) in statuses
