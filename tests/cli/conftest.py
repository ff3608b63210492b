from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "students"


@dataclass
class Result:
    code: int
    out: str
    err: str


def bd(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """Run the real ``batchdrop`` command in a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "batchdrop", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of examples/students in a fresh folder, its CSV waiting in inbound."""
    shutil.copy(EXAMPLE / "batchdrop.yaml", tmp_path / "batchdrop.yaml")
    (tmp_path / "inbound").mkdir()
    shutil.copy(EXAMPLE / "students.csv", tmp_path / "inbound" / "students.csv")
    return tmp_path
