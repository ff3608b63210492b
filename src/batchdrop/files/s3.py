"""The S3 file store: ``s3://bucket/prefix/`` for inbound, archive and errors.

- A file's version is its VersionId on a versioned bucket, else its ETag.
- ``open`` streams the object (memory stays flat) and pins the version it was given: a read that
  breaks midway resumes with a ranged GET of the same version.
- ``move`` is CopyObject (a multipart copy above 5 GB) then DeleteObject of that exact version.
  A destination name already taken is never overwritten: the file gets a unique name. The copy
  carries the source URL and version in its metadata, so a move interrupted between the copy and
  the delete is finished by the next run without a second copy.
"""

from __future__ import annotations

import io
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import ConfigError, TransientError
from ..ports import FileRef, FileStore

if TYPE_CHECKING:
    from ..config import Config

#: CopyObject copies at most 5 GB; above that the copy is done in parts.
MAX_SINGLE_COPY = 5 * 1024**3
MAX_SINGLE_PUT = 64 * 1024**2  # larger reports and receipts go up in parts (boto3's managed upload)
META_SOURCE = "batchdrop-source"
META_VERSION = "batchdrop-version"
READ_RETRIES = 3


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → (bucket, "some/prefix/")."""
    if not url.startswith("s3://"):
        raise ConfigError(f"{url!r} is not an s3:// URL")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ConfigError(f"{url!r} names no bucket: use s3://bucket/prefix/")
    prefix = prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def _etag(value: str) -> str:
    return value.strip('"')


class S3Store:
    """A FileStore over one bucket and prefix."""

    def __init__(self, url: str, config: Config | None = None, *, client: Any = None):
        self.bucket, self.prefix = parse_s3_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}"
        self.config = config
        self._client = client
        self._versioned: bool | None = None
        #: above this size a move copies in parts (tests lower it to exercise that path)
        self.copy_threshold = MAX_SINGLE_COPY
        self.put_threshold = MAX_SINGLE_PUT
        self.copy_part_size = 512 * 1024**2

    @property
    def client(self) -> Any:
        if self._client is None:
            from ..aws.clients import client

            self._client = client("s3", self.config)
        return self._client

    def key(self, name: str) -> str:
        return self.prefix + name

    def ref_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # --- reading ------------------------------------------------------------------------------

    def versioned(self) -> bool:
        if self._versioned is None:
            reply = self._call(self.client.get_bucket_versioning, Bucket=self.bucket)
            self._versioned = reply.get("Status") in ("Enabled", "Suspended")
        return self._versioned

    def list(self, suffixes: Sequence[str]) -> list[FileRef]:
        ends = tuple(suffixes)
        refs = [r for r in self._iter_latest() if r.name.endswith(ends)]
        refs.sort(key=lambda r: (r.modified, r.name))
        return refs

    def _iter_latest(self) -> Iterator[FileRef]:
        if self.versioned():
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in self._pages(pages):
                for v in page.get("Versions", []):
                    if v.get("IsLatest") and not v["Key"].endswith("/"):
                        yield self._ref(v["Key"], v["Size"], self._version(v), v["LastModified"])
            return
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in self._pages(pages):
            for o in page.get("Contents", []):
                if not o["Key"].endswith("/"):  # "folder" markers made by consoles
                    yield self._ref(o["Key"], o["Size"], _etag(o["ETag"]), o["LastModified"])

    def _pages(self, pages: Any) -> Iterator[dict[str, Any]]:
        try:
            yield from pages
        except Exception as e:
            raise self._translate(e, "list") from e

    @staticmethod
    def _version(obj: dict[str, Any]) -> str:
        vid = obj.get("VersionId")
        return vid if vid and vid != "null" else _etag(obj["ETag"])

    def _ref(self, key: str, size: int, version: str, modified: Any) -> FileRef:
        ts = modified.timestamp() if hasattr(modified, "timestamp") else float(modified or 0)
        return FileRef(
            name=key[len(self.prefix) :],
            size=int(size),
            version=version,
            modified=ts,
            url=self.ref_url(key),
        )

    def stat(self, name: str) -> FileRef | None:
        head = self._head(self.key(name))
        if head is None:
            return None
        return self._ref(
            self.key(name), head["ContentLength"], self._version(head), head.get("LastModified")
        )

    def _head(self, key: str, **extra: Any) -> dict[str, Any] | None:
        from ..aws.clients import error_code

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key, **extra)  # type: ignore
        except Exception as e:
            if error_code(e) in (
                "404",
                "NoSuchKey",
                "NotFound",
                "405",
                "MethodNotAllowed",
                "412",
                "PreconditionFailed",
            ):
                return None  # gone, replaced, or the latest version is a delete marker
            raise self._translate(e, f"read {self.ref_url(key)}") from e

    def _pin(self, ref: FileRef) -> dict[str, str]:
        """The GetObject/CopySource arguments that select exactly ``ref``'s version."""
        if self.versioned() and not _looks_like_etag(ref.version):
            return {"VersionId": ref.version}
        return {"IfMatch": f'"{ref.version}"'}

    def open(self, ref: FileRef, offset: int = 0) -> BinaryIO:
        raw = _ObjectReader(self, self.key(ref.name), self._pin(ref), ref.size)
        raw.pos = offset  # a ranged GET: a resumed run reads from its checkpoint
        raw.start()
        return io.BufferedReader(raw, buffer_size=1024 * 1024)  # type: ignore[return-value]

    # --- writing ------------------------------------------------------------------------------

    def move(self, ref: FileRef, dest: FileStore, name: str | None = None) -> str:
        target = name or ref.name
        if not isinstance(dest, S3Store):
            return self._move_out(ref, dest, target)
        src_key = self.key(ref.name)
        head = self._head(src_key, **self._pin(ref))
        if head is None:
            done = dest._find_copy(target, ref)  # an earlier run copied it, then stopped
            if done is not None:
                return done
            raise FileNotFoundError(f"{ref.url} is no longer there")
        url = dest._find_copy(target, ref)
        if url is None:
            url = dest._copy_in(self, ref, head, target)
        self._delete(src_key, ref)
        return url

    def _find_copy(self, name: str, ref: FileRef) -> str | None:
        """The URL of a copy of ``ref`` an earlier, interrupted move made here, if any."""
        base = self.key(name)
        head = self._head(base)
        if head is None:
            return None
        keys = [base]
        if not self._is_copy_of(head, ref):
            # The name was taken: an earlier move may have used a unique variant of it.
            stem = base[: len(base) - len(_suffix(base))]
            reply = self._call(
                self.client.list_objects_v2, Bucket=self.bucket, Prefix=stem + "-", MaxKeys=50
            )
            keys = [o["Key"] for o in reply.get("Contents", [])]
        for key in keys:
            found = head if key == base else self._head(key)
            if found is not None and self._is_copy_of(found, ref):
                return self.ref_url(key)
        return None

    @staticmethod
    def _is_copy_of(head: dict[str, Any], ref: FileRef) -> bool:
        meta = head.get("Metadata", {})
        return bool(meta.get(META_SOURCE) == ref.url and meta.get(META_VERSION) == ref.version)

    def _copy_in(self, src: S3Store, ref: FileRef, head: dict[str, Any], name: str) -> str:
        meta = dict(head.get("Metadata", {}))
        meta.update({META_SOURCE: ref.url, META_VERSION: ref.version})
        source: dict[str, str] = {"Bucket": src.bucket, "Key": src.key(ref.name)}
        pin = src._pin(ref)
        if "VersionId" in pin:
            source["VersionId"] = pin["VersionId"]
        args: dict[str, Any] = {
            "Metadata": meta,
            "MetadataDirective": "REPLACE",
            "ContentType": head.get("ContentType", "text/csv"),
        }
        if "IfMatch" in pin:
            args["CopySourceIfMatch"] = pin["IfMatch"]
        for key in self._candidates(name):
            if self._head(key) is not None:
                continue
            if ref.size <= self.copy_threshold:
                try:
                    self._call(
                        self.client.copy_object,
                        CopySource=source,
                        Bucket=self.bucket,
                        Key=key,
                        IfNoneMatch="*",
                        **args,
                    )
                except _Taken:
                    continue
            else:
                self._multipart_copy(source, key, args)
            return self.ref_url(key)
        raise TransientError(f"no free name for {name!r} in {self.url}")

    def _multipart_copy(self, source: dict[str, str], key: str, args: dict[str, Any]) -> None:
        from boto3.s3.inject import copy
        from boto3.s3.transfer import TransferConfig

        extra = dict(args)  # with MetadataDirective=REPLACE: our metadata on the parts' upload
        cfg = TransferConfig(
            multipart_threshold=self.copy_threshold,
            multipart_chunksize=self.copy_part_size,
            max_concurrency=4,
        )
        try:
            copy(self.client, source, self.bucket, key, ExtraArgs=extra, Config=cfg)
        except Exception as e:
            raise self._translate(e, f"copy to {self.ref_url(key)}") from e

    def _delete(self, key: str, ref: FileRef) -> None:
        pin = self._pin(ref)
        # Delete exactly the version that was loaded: a newer upload under the same name stays.
        self._call(
            self.client.delete_object,
            Bucket=self.bucket,
            Key=key,
            **pin,
            allow={"412", "PreconditionFailed", "404", "NoSuchKey"},
        )

    def _move_out(self, ref: FileRef, dest: FileStore, name: str) -> str:
        import tempfile

        with tempfile.NamedTemporaryFile(suffix="-" + os.path.basename(name)) as tmp:
            with self.open(ref) as body:
                while chunk := body.read(1024 * 1024):
                    tmp.write(chunk)
            tmp.flush()
            url = dest.put(name, tmp.name, "text/csv")
        self._delete(self.key(ref.name), ref)
        return url

    def put(self, name: str, local_path: str, content_type: str) -> str:
        size = os.path.getsize(local_path)
        for key in self._candidates(name):
            if size < self.put_threshold:
                try:
                    with open(local_path, "rb") as f:
                        self._call(
                            self.client.put_object,
                            Bucket=self.bucket,
                            Key=key,
                            Body=f,
                            ContentType=content_type,
                            IfNoneMatch="*",
                        )
                except _Taken:
                    continue
            else:
                if self._head(key) is not None:
                    continue
                from boto3.s3.inject import upload_file

                try:
                    upload_file(
                        self.client,
                        local_path,
                        self.bucket,
                        key,
                        ExtraArgs={"ContentType": content_type},
                    )
                except Exception as e:
                    raise self._translate(e, f"write {self.ref_url(key)}") from e
            return self.ref_url(key)
        raise TransientError(f"no free name for {name!r} in {self.url}")

    def _candidates(self, name: str, limit: int = 6) -> Iterator[str]:
        """``name``, then unique variants of it: students.csv → students-20261127T0912Z-3fa9.csv."""
        yield self.key(name)
        ext = _suffix(name)
        stem = name[: len(name) - len(ext)]
        for _ in range(limit - 1):
            tag = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)
            yield self.key(f"{stem}-{tag}{ext}")

    # --- errors -------------------------------------------------------------------------------

    def _call(self, fn: Any, allow: set[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        from ..aws.clients import error_code

        try:
            return fn(**kwargs)  # type: ignore[no-any-return]
        except Exception as e:
            code = error_code(e)
            if allow and code in allow:
                return {}
            if code in ("PreconditionFailed", "412") and kwargs.get("IfNoneMatch") == "*":
                raise _Taken() from e
            where = kwargs.get("Key") or kwargs.get("Bucket") or ""
            raise self._translate(e, f"{fn.__name__.replace('_', ' ')} {where}") from e

    def _translate(self, e: Exception, what: str) -> Exception:
        from ..aws.clients import error_code, is_transient

        code = error_code(e)
        if code in (
            "NoSuchBucket",
            "AccessDenied",
            "AllAccessDisabled",
            "InvalidAccessKeyId",
            "403",
        ):
            return ConfigError(
                f"S3 refused to {what} ({code}): check the bucket name in the "
                f"config and the role's permissions on {self.url}"
            )
        if code in ("NoSuchKey", "404", "NotFound"):
            return FileNotFoundError(f"{self.url}: {what}: not found")
        if is_transient(e):
            return TransientError(f"S3 could not {what} ({code or type(e).__name__}): {e}")
        return TransientError(f"S3 failed to {what}: {e}")


class _Taken(Exception):
    """A conditional write found the name taken."""


def _suffix(name: str) -> str:
    """The extensions of a file name: ".csv", ".csv.gz" ("" when there is none)."""
    base = name.rpartition("/")[2]
    stem, dot, ext = base.lstrip(".").partition(".")
    return dot + ext if stem else ""


def _looks_like_etag(version: str) -> bool:
    head = version.split("-", 1)[0]
    return len(head) == 32 and all(c in "0123456789abcdef" for c in head)


class _ObjectReader(io.RawIOBase):
    """The bytes of one object version, resuming with a ranged GET when a read breaks."""

    def __init__(self, store: S3Store, key: str, pin: dict[str, str], size: int):
        self.store, self.key, self.pin, self.size = store, key, pin, size
        self.pos = 0
        self.body: Any = None

    def start(self) -> None:
        if self.size and self.pos >= self.size:
            self.body = io.BytesIO(b"")  # nothing left: a range past the end is refused
            return
        self._get()

    def _get(self) -> None:
        from ..aws.clients import error_code

        extra = dict(self.pin)
        if self.pos:
            extra["Range"] = f"bytes={self.pos}-"
        try:
            reply = self.store.client.get_object(Bucket=self.store.bucket, Key=self.key, **extra)
        except Exception as e:
            if error_code(e) in ("PreconditionFailed", "412", "NoSuchVersion"):
                raise FileNotFoundError(
                    f"{self.store.ref_url(self.key)} changed or went away since it was listed"
                ) from e
            raise self.store._translate(e, f"read {self.store.ref_url(self.key)}") from e
        self.body = reply["Body"]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        from ..aws.clients import is_transient

        view = memoryview(buffer).cast("B")
        for attempt in range(READ_RETRIES + 1):
            try:
                data = self.body.read(len(view))
                break
            except Exception as e:
                if attempt == READ_RETRIES or not (is_transient(e) or isinstance(e, OSError)):
                    raise TransientError(
                        f"reading {self.store.ref_url(self.key)} broke at byte {self.pos}: {e}"
                    ) from e
                self.body.close()
                time.sleep(0.2 * 2**attempt)
                self._get()
        n = len(data)
        view[:n] = data
        self.pos += n
        return n

    def close(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None
        super().close()
