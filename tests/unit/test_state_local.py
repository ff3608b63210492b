"""The local state location: ``<errors>/_batchdrop/state/<run_id>/``, objects written whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchdrop.config import Config, parse_config
from batchdrop.files.local import LocalStore
from batchdrop.state import LocalState, open_state

from .configs import TWO_FIELDS

RUN = "20261127T084730.123Z-3f9a1c"


def local_config(tmp: Path) -> Config:
    where = {k: str(tmp / k) for k in ("inbound", "archive", "errors")}
    return parse_config({**TWO_FIELDS, **where}, source="test", environ={})


def test_objects_round_trip_under_the_errors_folder(tmp_path: Path) -> None:
    state = LocalState(str(tmp_path / "errors"))
    state.put(RUN, "validate-000001.delta", b"\x00first\n")
    state.put(RUN, "validate-000000.delta", b"")

    assert state.get(RUN, "validate-000001.delta") == b"\x00first\n"
    assert state.get(RUN, "validate-000000.delta") == b""
    folder = tmp_path / "errors" / "_batchdrop" / "state" / RUN
    assert sorted(os.listdir(folder)) == ["validate-000000.delta", "validate-000001.delta"]
    assert state.url == str(tmp_path / "errors" / "_batchdrop" / "state")


def test_open_state_places_the_state_beside_the_configured_errors(tmp_path: Path) -> None:
    config = local_config(tmp_path)
    state = open_state(config)
    state.put(RUN, "a", b"x")
    assert (Path(config.errors) / "_batchdrop" / "state" / RUN / "a").read_bytes() == b"x"
    # the errors store never lists the state as a rejected file
    (Path(config.errors) / "bad.csv").write_text("x\n")
    assert [r.name for r in LocalStore(config.errors).list([".csv", ""])] == ["bad.csv"]


def test_put_overwrites_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    state = LocalState(str(tmp_path))
    state.put(RUN, "progress", b"one")
    state.put(RUN, "progress", b"two, longer")
    assert state.get(RUN, "progress") == b"two, longer"
    assert os.listdir(tmp_path / "_batchdrop" / "state" / RUN) == ["progress"]


def test_a_put_that_fails_midway_keeps_the_old_object_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = LocalState(str(tmp_path))
    state.put(RUN, "progress", b"old and whole")

    def crash(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="No space"):
        state.put(RUN, "progress", b"new" * 1000)
    monkeypatch.undo()
    assert state.get(RUN, "progress") == b"old and whole"
    assert os.listdir(tmp_path / "_batchdrop" / "state" / RUN) == ["progress"]


def test_names_are_sorted_and_per_run(tmp_path: Path) -> None:
    state = LocalState(str(tmp_path))
    for name in ("write-000000.delta", "validate-000010.delta", "validate-000002.delta"):
        state.put(RUN, name, b"x")
    state.put("other-run", "validate-000000.delta", b"y")
    # what a put killed between its write and its rename leaves: never an object
    (tmp_path / "_batchdrop" / "state" / RUN / ".write-000001.delta.k3j2.tmp").write_bytes(b"h")
    assert state.names(RUN) == [
        "validate-000002.delta",
        "validate-000010.delta",
        "write-000000.delta",
    ]
    assert state.names("no-such-run") == []


def test_drop_removes_the_run_and_only_it(tmp_path: Path) -> None:
    state = LocalState(str(tmp_path))
    state.put(RUN, "a", b"1")
    state.put(RUN, "b", b"2")
    state.put("other-run", "a", b"3")
    state.drop(RUN)
    assert state.names(RUN) == []
    assert not (tmp_path / "_batchdrop" / "state" / RUN).exists()
    assert state.get("other-run", "a") == b"3"
    state.drop(RUN)  # nothing left: fine
    state.drop("never-was")


def test_a_missing_object_is_file_not_found(tmp_path: Path) -> None:
    state = LocalState(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such state object"):
        state.get(RUN, "validate-000000.delta")
    state.put(RUN, "a", b"1")
    with pytest.raises(FileNotFoundError):
        state.get(RUN, "b")


BAD = ["..", ".", "", "../escape", "a/b", "/abs", ".hidden", "a..b", "spaced name", "nul\x00", "é"]


@pytest.mark.parametrize("bad", BAD)
def test_bad_run_ids_and_names_are_refused_before_any_write(tmp_path: Path, bad: str) -> None:
    state = LocalState(str(tmp_path / "errors"))
    calls = {
        "put run": lambda: state.put(bad, "a", b"x"),
        "get run": lambda: state.get(bad, "a"),
        "names": lambda: state.names(bad),
        "drop": lambda: state.drop(bad),
        "put name": lambda: state.put(RUN, bad, b"x"),
        "get name": lambda: state.get(RUN, bad),
    }
    for what, call in calls.items():
        with pytest.raises(ValueError, match="is not a state name"):
            call()
            pytest.fail(f"{what} took {bad!r}")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_local_state_never_imports_boto3(tmp_path: Path) -> None:
    config = {**TWO_FIELDS, "errors": str(tmp_path / "errors")}
    code = f"""
import sys
from batchdrop.config import parse_config
from batchdrop.state import open_state
state = open_state(parse_config({config!r}, source="test", environ={{}}))
state.put("run", "a", b"x")
assert state.get("run", "a") == b"x" and state.names("run") == ["a"]
state.drop("run")
print(type(state).__name__, sorted(m for m in ("boto3", "botocore") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["LocalState", "[]"]
