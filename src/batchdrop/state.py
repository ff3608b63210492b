"""The state location: objects a run keeps beyond one process (the deltas of a long pass).

It sits beside the errors location, under ``_batchdrop/state/<run_id>/``: a folder locally, a key
prefix on S3 (a Lambda's ``/tmp`` dies with its sandbox, so it is never the only copy). The
errors store lists no name that starts with ``_``, so the state never passes for a rejected file.

A run removes its own state when it ends; on a bucket the stack creates, a lifecycle rule expires
what a run abandoned for good (``deploy/resources.py``).

Names are checked before they become paths or keys: a run id or object name is
``[A-Za-z0-9._:-]+``, never ``..`` inside, never a leading ``.`` (temporary files start so).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ConfigError, TransientError

if TYPE_CHECKING:
    from .config import Config

#: where the state lives below the errors location (the deploy's policy and lifecycle rule too)
STATE_PREFIX = "_batchdrop/state/"
#: what a feed's table held after its last load (feed_state.py): never expired, unlike a
#: run's state, since the next load of the feed needs it however late it comes
FEEDS_PREFIX = "_batchdrop/feeds/"
_NAME = re.compile(r"[A-Za-z0-9._:-]+")
#: DeleteObjects takes at most this many keys a request
_DELETE_BATCH = 1000


class StateStore(Protocol):
    url: str  # for people: /abs/errors/_batchdrop/state or s3://bucket/prefix/_batchdrop/state

    def put(self, run_id: str, name: str, data: bytes) -> None:
        """Write (or overwrite) an object whole: a reader sees the old bytes or the new ones."""

    def get(self, run_id: str, name: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none."""

    def names(self, run_id: str) -> list[str]:
        """The run's object names, sorted ([] for a run with none)."""

    def drop(self, run_id: str) -> None:
        """Remove the run's objects (nothing to remove is fine)."""


def check_name(kind: str, value: str) -> str:
    """``value`` if it is safe as one path component or key segment, else ValueError."""
    if not _NAME.fullmatch(value) or ".." in value or value.startswith("."):
        raise ValueError(
            f"{kind} {value!r} is not a state name: use letters, digits and . _ : - "
            "(no '/', no '..', no leading '.')"
        )
    return value


def open_state(config: Config, prefix: str = STATE_PREFIX) -> StateStore:
    """The state location beside ``config.errors``: a local folder or ``s3://bucket/prefix``
    (``prefix``: below the errors location, the runs' state or the feeds')."""
    if config.errors.startswith("s3://"):
        return S3State(config.errors, config, prefix=prefix)
    if "://" in config.errors:
        raise ConfigError(f"{config.errors!r}: the state location must be a folder or s3://")
    return LocalState(config.errors, prefix=prefix)


class LocalState:
    """``<errors>/_batchdrop/state/<run_id>/<name>``, each object written by rename."""

    def __init__(self, errors: str, *, prefix: str = STATE_PREFIX):
        self.root = Path(errors).expanduser().resolve() / prefix.rstrip("/")
        self.url = str(self.root)

    def _folder(self, run_id: str) -> Path:
        return self.root / check_name("run id", run_id)

    def put(self, run_id: str, name: str, data: bytes) -> None:
        folder = self._folder(run_id)
        check_name("state name", name)
        folder.mkdir(parents=True, exist_ok=True)
        # a temporary file in the same folder, then a rename: the object appears whole or not
        # at all, even to a process killed mid-write
        fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, folder / name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        _sync_folder(folder)  # the rename itself survives a crash of the machine

    def get(self, run_id: str, name: str) -> bytes:
        path = self._folder(run_id) / check_name("state name", name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such state object") from None

    def names(self, run_id: str) -> list[str]:
        try:
            entries = os.listdir(self._folder(run_id))
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if not e.startswith("."))

    def drop(self, run_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._folder(run_id))


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform that cannot open a folder (Windows): the rename is all it has
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class S3State:
    """``s3://bucket/<errors prefix>_batchdrop/state/<run_id>/<name>``; a PUT is atomic."""

    def __init__(
        self,
        errors: str,
        config: Config | None = None,
        *,
        client: Any = None,
        prefix: str = STATE_PREFIX,
    ):
        from .files.s3 import parse_s3_url

        self.bucket, errors_prefix = parse_s3_url(errors)
        self.prefix = errors_prefix + prefix
        self.url = f"s3://{self.bucket}/{self.prefix.rstrip('/')}"
        self.config = config
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from .aws.clients import client

            self._client = client("s3", self.config)
        return self._client

    def _folder(self, run_id: str) -> str:
        return f"{self.prefix}{check_name('run id', run_id)}/"

    def _key(self, run_id: str, name: str) -> str:
        return self._folder(run_id) + check_name("state name", name)

    def put(self, run_id: str, name: str, data: bytes) -> None:
        key = self._key(run_id, name)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except Exception as e:
            raise self._translate(e, "s3:PutObject", key) from e

    def get(self, run_id: str, name: str) -> bytes:
        from .aws.clients import error_code

        key = self._key(run_id, name)
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=key)
            return reply["Body"].read()  # type: ignore[no-any-return]
        except Exception as e:
            if error_code(e) in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(f"s3://{self.bucket}/{key}: no such state object") from e
            raise self._translate(e, "s3:GetObject", key) from e

    def _keys(self, run_id: str) -> list[str]:
        folder = self._folder(run_id)
        keys: list[str] = []
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": folder}
        while True:
            try:
                reply = self.client.list_objects_v2(**args)
            except Exception as e:
                raise self._translate(e, "s3:ListBucket", folder) from e
            keys += [o["Key"] for o in reply.get("Contents", [])]
            if not reply.get("IsTruncated"):
                return keys
            args["ContinuationToken"] = reply["NextContinuationToken"]

    def names(self, run_id: str) -> list[str]:
        folder = self._folder(run_id)
        # a key below a deeper "folder" is none of this store's objects
        return sorted(n for k in self._keys(run_id) if "/" not in (n := k[len(folder) :]))

    def drop(self, run_id: str) -> None:
        keys = self._keys(run_id)
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            objects = {"Objects": [{"Key": k} for k in batch], "Quiet": True}
            try:
                reply = self.client.delete_objects(Bucket=self.bucket, Delete=objects)
            except Exception as e:
                raise self._translate(e, "s3:DeleteObject", batch[0]) from e
            # DeleteObjects answers 200 and lists the keys it could not delete
            failed = reply.get("Errors", [])
            if failed:
                first = failed[0]
                raise self._refusal(
                    str(first.get("Code", "")),
                    first.get("Message", ""),
                    "s3:DeleteObject",
                    first["Key"],
                )

    def _translate(self, e: Exception, action: str, key: str) -> Exception:
        from .aws.clients import error_code, is_transient

        if is_transient(e):  # throttling, 5xx, a broken connection: a retry may succeed
            code = error_code(e) or type(e).__name__
            return TransientError(f"S3 could not {action} s3://{self.bucket}/{key} ({code}): {e}")
        return self._refusal(error_code(e), str(e), action, key)

    def _refusal(self, code: str, message: str, action: str, key: str) -> Exception:
        where = f"s3://{self.bucket}/{key}"
        if code in ("AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "403"):
            scope = (
                f"s3://{self.bucket} for the prefix {self.prefix}"
                if action == "s3:ListBucket"
                else f"{self.url}/*"
            )
            return ConfigError(
                f"S3 refused {action} on {where} ({code}): the role needs {action} on {scope}"
            )
        if code == "NoSuchBucket":
            return ConfigError(f"{where}: no such bucket: check the errors location in the config")
        if code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"):
            return TransientError(f"S3 could not {action} {where} ({code}): {message}")
        return TransientError(f"S3 failed {action} on {where} ({code or 'no code'}): {message}")
