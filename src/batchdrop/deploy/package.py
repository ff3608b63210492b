"""The Lambda deployment zip: batchdrop, its runtime dependencies built for Linux on the chosen
architecture, and the config as ``batchdrop.yaml``.

What the Lambda Python 3.12 runtime already provides (boto3 and its dependencies) is left out.
The zip is reproducible: the same inputs give the same bytes, hence the same S3 key, so a
deploy with nothing changed changes nothing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ..aws.secrets import webhooks
from ..errors import ConfigError, TransientError
from .settings import DeploySettings

if TYPE_CHECKING:
    from ..config import Config

#: Provided by the Lambda Python 3.12 runtime.
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six"}
)
#: Needed only off Lambda (the local API server).
LOCAL_ONLY = frozenset({"uvicorn"})
PLATFORM = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
MAX_UNZIPPED = 250 * 1024 * 1024  # Lambda's limit for a function's unzipped code
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Package:
    path: Path
    size: int
    unzipped_size: int
    sha256: str
    files: int

    def describe(self) -> str:
        return (
            f"{self.path}: {self.size / 1e6:.1f} MB zipped, "
            f"{self.unzipped_size / 1e6:.1f} MB unzipped, {self.files} files "
            f"(sha256 {self.sha256[:12]})"
        )


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_requirements() -> list[tuple[str, str | None]]:
    """(requirement, extra or None) as batchdrop declares them: from its installed metadata, or
    from pyproject.toml when running from a source tree."""
    try:
        reqs = importlib.metadata.requires("batchdrop") or []
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        out: list[tuple[str, str | None]] = [(r, None) for r in project["dependencies"]]
        for extra, more in project.get("optional-dependencies", {}).items():
            out += [(r, extra) for r in more]
        return out
    result: list[tuple[str, str | None]] = []
    for req in reqs:
        spec, _, marker = req.partition(";")
        extra = re.search(r"extra\s*==\s*[\"']([\w-]+)[\"']", marker)
        result.append((spec.strip(), extra.group(1) if extra else None))
    return result


def runtime_requirements(api: bool) -> list[str]:
    """batchdrop's requirements on Lambda: core and the ``aws`` extra (and ``api``), minus what
    the runtime provides."""
    wanted = {"aws", "api"} if api else {"aws"}
    out: set[str] = set()
    for spec, extra in declared_requirements():
        if extra is not None and extra not in wanted:
            continue
        name = re.match(r"[A-Za-z0-9_.\-]+", spec)
        canonical = _canonical(name.group(0)) if name else ""
        if canonical in RUNTIME_PROVIDED or canonical in LOCAL_ONLY or canonical == "batchdrop":
            continue
        out.add(spec)
    return sorted(out)


def pip_install(requirements: list[str], target: Path, architecture: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--platform",
        PLATFORM[architecture],
        "--implementation",
        "cp",
        "--python-version",
        "3.12",
        "--only-binary=:all:",
        "--target",
        str(target),
        *requirements,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise TransientError(f"pip could not fetch the Lambda dependencies:\n{tail}")


def prune(target: Path) -> None:
    """Remove what the runtime provides (pulled in as dependencies), scripts and caches."""
    for info in target.glob("*.dist-info"):
        meta = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
        name = re.search(r"^Name:\s*(\S+)", meta, re.M)
        if name and _canonical(name.group(1)) in RUNTIME_PROVIDED:
            record = info / "RECORD"
            for line in record.read_text(encoding="utf-8").splitlines() if record.exists() else []:
                (target / line.split(",")[0]).unlink(missing_ok=True)
            shutil.rmtree(info, ignore_errors=True)
    shutil.rmtree(target / "bin", ignore_errors=True)
    for cache in list(target.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    for path in sorted(target.rglob("*"), reverse=True):  # directories emptied by the above
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def config_text(config: Config) -> str:
    """The config as written (comments and relative paths kept); the stack's environment
    variables point it at the stack's resources.

    Webhook URLs are credentials: they are left out (the function reads them from the stack's
    SSM SecureString parameter), so neither the package nor the artifact bucket holds one.
    """
    hooks = set(webhooks(config))
    if config.source and Path(config.source).is_file():
        text = Path(config.source).read_text(encoding="utf-8")
        return _without_webhooks(text, hooks) if hooks else text
    if config.feeds[0].name is not None:
        # a feed's config is only its own part of the deployment: the file holds them all
        raise ConfigError(
            "a config with feeds is packaged from its file: load it from one",
            source=config.source,
        )
    data = config.model_dump(by_alias=True, exclude_none=True, exclude={"source"})
    data["notify"] = [t for t in data.get("notify", []) if t not in hooks]
    return yaml.safe_dump(data, sort_keys=False)


def _without_webhooks(text: str, hooks: set[str]) -> str:
    """``text`` without its webhook entries: their lines dropped when the list is written one
    item a line (comments kept), else the document written anew."""
    data = yaml.safe_load(text)
    want = {**data, "notify": [t for t in data.get("notify", []) if t not in hooks]}

    def is_hook(line: str) -> bool:
        item = line.strip()
        if not item.startswith("- "):
            return False
        try:
            value = yaml.safe_load(item[2:])
        except yaml.YAMLError:
            return False
        return isinstance(value, str) and value in hooks

    kept = "".join(line for line in text.splitlines(keepends=True) if not is_hook(line))
    try:
        if yaml.safe_load(kept) == want:
            return kept
    except yaml.YAMLError:
        pass
    return yaml.safe_dump(want, sort_keys=False)


def _entries(root: Path) -> Iterable[tuple[str, Path]]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and "__pycache__" not in rel and not rel.endswith(".pyc"):
            yield rel, path


def write_zip(out: Path, files: Iterable[tuple[str, bytes, bool]]) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data, executable in sorted(files):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.external_attr = (0o755 if executable else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)


def build_package(
    config: Config, settings: DeploySettings, out: Path, *, with_dependencies: bool = True
) -> Package:
    """Build the zip at ``out``. ``with_dependencies=False`` packs batchdrop and the config only
    (for emulators, which never run the code)."""
    import batchdrop

    source = Path(batchdrop.__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="batchdrop-package-") as tmp:
        deps = Path(tmp)
        if with_dependencies:
            pip_install(runtime_requirements(settings.api), deps, settings.architecture)
            prune(deps)
            if (deps / "batchdrop").exists():
                shutil.rmtree(deps / "batchdrop")
        files: list[tuple[str, bytes, bool]] = []
        for root, prefix in ((deps, ""), (source, "batchdrop/")):
            for rel, path in _entries(root):
                files.append((prefix + rel, path.read_bytes(), os.access(path, os.X_OK)))
        files.append(("batchdrop.yaml", config_text(config).encode("utf-8"), False))
        unzipped = sum(len(data) for _, data, _ in files)
        if unzipped > MAX_UNZIPPED:
            raise ConfigError(
                f"the package would be {unzipped / 1e6:.0f} MB unzipped; Lambda "
                f"allows {MAX_UNZIPPED / 1e6:.0f} MB"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        write_zip(out, files)
    data = out.read_bytes()
    return Package(
        path=out,
        size=len(data),
        unzipped_size=unzipped,
        sha256=hashlib.sha256(data).hexdigest(),
        files=len(files),
    )
