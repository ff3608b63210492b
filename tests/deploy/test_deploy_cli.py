"""``batchdrop template | package | deploy | destroy`` through the real CLI group."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from batchdrop.cli import cli
from batchdrop.config import load_config
from batchdrop.deploy.settings import deploy_settings
from batchdrop.deploy.template import build_template
from batchdrop.errors import ConfigError

from .configs import write_config


def run(config: Path, *args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["--config", str(config), *args], input=input)


def test_template_prints_the_template_as_yaml_or_json(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"trigger": "direct"})
    config = load_config(path, environ={})
    expected = build_template(config, deploy_settings(config))
    result = run(path, "template")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == expected
    as_json = run(path, "template", "--json")
    assert json.loads(as_json.output) == expected


def test_template_with_a_bad_setting_fails_with_the_key(tmp_path: Path) -> None:
    result = run(write_config(tmp_path, {"architecture": "arm"}), "template")
    assert isinstance(result.exception, ConfigError)
    assert "deploy.architecture: got 'arm'" in str(result.exception)


def test_package_prints_its_size(tmp_path: Path) -> None:
    out = tmp_path / "dist" / "fn.zip"
    result = run(write_config(tmp_path), "package", "-o", str(out), "--without-dependencies")
    assert result.exit_code == 0, result.output
    assert out.exists() and f"{out}: " in result.output and "MB zipped" in result.output


@pytest.mark.aws
def test_deploy_again_then_destroy(aws_env: str, tmp_path: Path, unique: str) -> None:
    path = write_config(tmp_path)
    zip_path = tmp_path / "fn.zip"
    assert run(path, "package", "-o", str(zip_path), "--without-dependencies").exit_code == 0
    stack = f"cli-{unique}"
    first = run(
        path, "deploy", "--stack", stack, "--package", str(zip_path), "--email", "ops@example.com"
    )
    assert first.exit_code == 0, first.output
    assert "CREATE_COMPLETE" in first.output
    assert f"InboundBucket    {stack}-inbound-123456789012-us-east-1" in first.output
    second = run(
        path, "deploy", "--stack", stack, "--package", str(zip_path), "--email", "ops@example.com"
    )
    assert second.exit_code == 0 and "no changes" in second.output
    refused = run(path, "destroy", "--stack", stack, input="n\n")
    assert refused.exit_code == 1 and "nothing destroyed" in refused.output
    assert (
        "no changes"
        in run(
            path,
            "deploy",
            "--stack",
            stack,
            "--package",
            str(zip_path),
            "--email",
            "ops@example.com",
        ).output
    )  # still there
    gone = run(path, "destroy", "--stack", stack, "--yes")
    assert gone.exit_code == 0, gone.output
    assert f"deleted stack {stack}" in gone.output


def test_deploy_rejects_a_bad_stack_name(tmp_path: Path) -> None:
    result = run(write_config(tmp_path), "deploy", "--stack", "My_Stack")
    assert isinstance(result.exception, ConfigError)
    assert "stack name 'My_Stack'" in str(result.exception)


def test_destroy_answered_no_exits_1_and_says_nothing_was_destroyed(tmp_path: Path) -> None:
    """The real command, as a terminal user meets it: no traceback, no "aborted", one line."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchdrop",
            "--config",
            str(write_config(tmp_path)),
            "destroy",
            "--stack",
            "students-prod",
        ],
        input="n\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == "Delete stack students-prod (buckets holding files are kept)? [y/N]: "
    assert done.stderr.splitlines() == [
        "batchdrop: nothing destroyed: stack students-prod is still there"
    ]
