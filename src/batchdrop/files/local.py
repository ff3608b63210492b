"""A local directory as a file store (inbound, archive or errors)."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from ..ports import FileRef, FileStore

HIDDEN = (".", "_")  # names the store never lists: dotfiles, partial uploads, our own temp files


def unique_name(name: str, taken: Callable[[str], bool], tag: str) -> str:
    """``name`` if free, else ``stem.TAG.ext`` (then ``stem.TAG-2.ext`` …): never overwrite."""
    if not taken(name):
        return name
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    for n in range(1, 10_000):
        suffix = tag if n == 1 else f"{tag}-{n}"
        candidate = f"{stem}.{suffix}{dot}{ext}"
        candidate = f"{folder}/{candidate}" if folder else candidate
        if not taken(candidate):
            return candidate
    raise FileExistsError(name)


def time_tag() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


class LocalStore:
    def __init__(self, root: str):
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def _path(self, name: str) -> Path:
        p = (self.root / name).resolve()
        if self.root not in p.parents:
            raise ValueError(f"{name!r} is outside {self.root}")
        return p

    def _ref(self, path: Path, *, versioned: bool = True) -> FileRef:
        """The file as a FileRef; its version (a sha256 of the content) only when asked,
        since it costs a read of the whole file."""
        st = path.stat()
        version = ""
        if versioned:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            version = "sha256:" + digest.hexdigest()
        return FileRef(
            path.relative_to(self.root).as_posix(), st.st_size, version, st.st_mtime, str(path)
        )

    def list(self, suffixes: Sequence[str]) -> list[FileRef]:
        if not self.root.is_dir():
            return []
        found: list[FileRef] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(HIDDEN))
            for fn in filenames:
                if fn.startswith(HIDDEN) or not fn.endswith(tuple(suffixes)):
                    continue
                try:  # no version yet: a watch loop must not re-read every file it sees;
                    # the engine asks for the version when it takes the file
                    found.append(self._ref(Path(dirpath, fn), versioned=False))
                except FileNotFoundError:
                    continue  # taken by another process while we looked
        found.sort(key=lambda ref: (ref.modified, ref.name))
        return found

    def stat(self, name: str, *, versioned: bool = True) -> FileRef | None:
        try:
            return self._ref(self._path(name), versioned=versioned)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def open(self, ref: FileRef) -> BinaryIO:
        return open(self._path(ref.name), "rb")

    def _exists(self, name: str) -> bool:
        return self._path(name).exists()

    def _place(self, src: Path, name: str, *, keep_source: bool) -> str:
        """Hard-link (or copy) ``src`` to a free name, never replacing a file; returns it."""
        final = unique_name(name, self._exists, time_tag())
        while True:
            dest = self._path(final)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dest)  # atomic, and fails rather than overwrite
                break
            except FileExistsError:
                final = unique_name(final, self._exists, time_tag())
            except OSError:  # another file system, or links not allowed: copy exclusively
                try:
                    with open(src, "rb") as fin, open(dest, "xb") as fout:
                        shutil.copyfileobj(fin, fout, 1 << 20)
                        fout.flush()
                        os.fsync(fout.fileno())
                    break
                except FileExistsError:
                    final = unique_name(final, self._exists, time_tag())
        if not keep_source:
            os.unlink(src)
        return str(self._path(final))

    def move(self, ref: FileRef, dest: FileStore, name: str | None = None) -> str:
        src = self._path(ref.name)
        if isinstance(dest, LocalStore):
            return dest._place(src, name or ref.name, keep_source=False)
        with open(src, "rb"):
            pass
        url = dest.put(name or ref.name, str(src), "text/csv")
        os.unlink(src)
        return url

    def put(self, name: str, local_path: str, content_type: str) -> str:
        return self._place(Path(local_path), name, keep_source=True)
