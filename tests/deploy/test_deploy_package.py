"""The Lambda package: what goes in, what stays out, and the same bytes for the same inputs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from batchdrop.deploy.package import (
    RUNTIME_PROVIDED,
    build_package,
    prune,
    runtime_requirements,
)
from batchdrop.deploy.settings import deploy_settings

from .configs import make_config, write_config


def names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as zf:
        return zf.namelist()


def test_requirements_leave_out_what_lambda_provides_and_local_only_tools() -> None:
    reqs = [r.split(">")[0].split("=")[0].lower() for r in runtime_requirements(api=False)]
    assert {"pydantic", "pyyaml", "click", "aws-lambda-powertools"} <= set(reqs)
    assert not set(reqs) & ({"boto3", "botocore", "fastapi", "uvicorn"} | RUNTIME_PROVIDED)
    with_api = [r.split(">")[0].lower() for r in runtime_requirements(api=True)]
    assert {"fastapi", "mangum"} <= set(with_api)
    assert "uvicorn" not in with_api


def test_package_holds_batchdrop_and_the_config_and_is_reproducible(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    settings = deploy_settings(config)
    first = build_package(config, settings, tmp_path / "a.zip", with_dependencies=False)
    second = build_package(config, settings, tmp_path / "b.zip", with_dependencies=False)
    assert first.sha256 == second.sha256
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    listed = names(first.path)
    assert "batchdrop/aws/handler.py" in listed and "batchdrop/deploy/template.py" in listed
    assert "batchdrop/web/templates/runs.html" in listed  # the runs page, for the API function
    assert not [n for n in listed if "__pycache__" in n or n.endswith(".pyc")]
    with zipfile.ZipFile(first.path) as zf:
        bundled = zf.read("batchdrop.yaml").decode()
        # as written, comments kept, less the webhook URL (a credential, kept in SSM)
        written = write_config(tmp_path).read_text()
        assert "https://hooks.example.com/batchdrop" in written
        assert bundled == written.replace("- https://hooks.example.com/batchdrop\n", "")
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert first.size == first.path.stat().st_size and first.files == len(listed)
    assert "MB zipped" in first.describe()
    # a different config is a different package, hence a different S3 key
    other = make_config(tmp_path, {"memory_mb": 512})
    assert (
        build_package(other, settings, tmp_path / "c.zip", with_dependencies=False).sha256
        != first.sha256
    )


def test_prune_removes_runtime_provided_distributions(tmp_path: Path) -> None:
    for dist, files in {
        "boto3-1.0": ["boto3/__init__.py"],
        "pydantic-2.0": ["pydantic/__init__.py"],
    }.items():
        name = dist.split("-")[0]
        info = tmp_path / f"{dist}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n")
        (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))
        for f in files:
            (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f).write_text("")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_text("")
    (tmp_path / "pydantic" / "__pycache__").mkdir()
    prune(tmp_path)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == [
        "pydantic",
        "pydantic-2.0.dist-info",
        "pydantic-2.0.dist-info/METADATA",
        "pydantic-2.0.dist-info/RECORD",
        "pydantic/__init__.py",
    ]


@pytest.mark.parametrize("arch, marker", [("arm64", "aarch64")])
def test_real_build_has_linux_binaries_for_the_architecture(
    tmp_path: Path, arch: str, marker: str
) -> None:
    """Fetches wheels with pip (network): pydantic-core must be the Linux build for ``arch``."""
    config = make_config(tmp_path, {"architecture": arch})
    built = build_package(config, deploy_settings(config), tmp_path / "lambda.zip")
    listed = names(built.path)
    binaries = [n for n in listed if n.startswith("pydantic_core/") and n.endswith(".so")]
    assert binaries and all(marker in b and "linux" in b for b in binaries)
    tops = {n.split("/")[0] for n in listed}
    assert {"batchdrop", "pydantic", "yaml", "click", "aws_lambda_powertools"} <= tops
    assert not tops & {"boto3", "botocore", "s3transfer", "bin"}
    assert built.unzipped_size < 250 * 1024 * 1024
