"""A local directory as a file store (inbound, archive or errors).

Only regular files are ever opened. Anything else that carries the suffix (a symbolic link, a
FIFO, a device) is listed with what it is, so the engine rejects it with that reason and moves
it — the entry itself, never what it points to — to the errors location.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from ..errors import DataError
from ..ports import FileRef, FileStore

UMASK = os.umask(0o022)  # what new files get here (read once: umask can only be read by setting)
os.umask(UMASK)
HIDDEN = (".", "_")  # names the store never lists: dotfiles, partial uploads, our own temp files
KINDS = {
    stat.S_IFLNK: "symbolic link",
    stat.S_IFIFO: "FIFO (named pipe)",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFDIR: "directory",
}


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


def sha256_of(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def suffix_of(name: str) -> str:
    """``.tsv`` for ``orders.tsv``, ``.tsv.gz`` for ``orders.tsv.gz``; "" for ``README``."""
    suffixes = Path(name).suffixes
    if len(suffixes) >= 2 and suffixes[-1] == ".gz":
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


def special_kind(mode: int) -> str:
    """What an entry that is not a regular file is ("symbolic link", …); "" for a file."""
    return "" if stat.S_ISREG(mode) else KINDS.get(stat.S_IFMT(mode), "special file")


class LocalStore:
    def __init__(self, root: str):
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def _path(self, name: str) -> Path:
        """The entry ``name`` below the root. The last component is not resolved, so a link
        is the link itself; everything above it must stay inside the root."""
        p = Path(os.path.normpath(self.root / name))
        parent = p.parent.resolve()
        if self.root not in p.parents or (parent != self.root and self.root not in parent.parents):
            raise DataError(f"{name!r} is outside {self.root}", file=name)
        return p

    def _ref(self, path: Path, *, versioned: bool = True) -> FileRef:
        """The entry as a FileRef; its version (a sha256 of the content) only when asked,
        since it costs a read of the whole file. An entry that is not a regular file is never
        read: its version names what it is."""
        st = path.lstat()
        special = special_kind(st.st_mode)
        version = ""
        if special:
            version = f"{special}:{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}"
        elif versioned:
            try:
                version = sha256_of(path)
            except PermissionError:  # its rejection says so; the entry itself is known
                version = f"unreadable:{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}"
        return FileRef(
            path.relative_to(self.root).as_posix(),
            0 if special else st.st_size,
            version,
            st.st_mtime,
            str(path),
            special,
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

    def passed_over(self, suffixes: Sequence[str]) -> tuple[tuple[str, str], ...]:
        """The visible files here that ``list`` does not take, each with why (what a user who
        dropped ``orders.tsv`` for a ``.csv`` config needs to be told). Hidden names are left
        out: they are partial uploads and temporary files, ignored on purpose."""
        if not self.root.is_dir():
            return ()
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(HIDDEN))
            for fn in sorted(filenames):
                if not fn.startswith(HIDDEN) and not fn.endswith(tuple(suffixes)):
                    name = Path(dirpath, fn).relative_to(self.root).as_posix()
                    ext = suffix_of(fn)
                    found.append((name, f"suffix {ext}" if ext else "no suffix"))
        return tuple(found)

    def stat(self, name: str, *, versioned: bool = True) -> FileRef | None:
        try:
            ref = self._ref(self._path(name), versioned=versioned)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if ref.special == "directory" else ref

    def open(self, ref: FileRef, offset: int = 0) -> BinaryIO:
        path = self._path(ref.name)
        kind = special_kind(path.lstat().st_mode)
        if kind:
            raise DataError(
                f"not a regular file but a {kind}; only regular files are read", file=ref.name
            )
        try:
            f = open(path, "rb")  # noqa: SIM115 - the caller closes it
        except PermissionError as e:
            raise DataError(f"the file cannot be read: {e.strerror}", file=ref.name) from None
        if offset:
            f.seek(offset)
        return f

    def _exists(self, name: str) -> bool:
        return os.path.lexists(self._path(name))

    def _own_copy(self, src: Path, name: str, version: str) -> str | None:
        """A copy of ``src`` that an earlier, interrupted move placed here under ``name`` or a
        unique variant of it: the same file (a hard link), or the same content."""
        want = self._path(name)
        if not os.path.lexists(want):
            return None  # the name was free, so no earlier move can have used a variant of it
        folder = want.parent
        stem, dot, ext = want.name.partition(".")
        try:
            src_st = src.lstat()
        except FileNotFoundError:
            return None
        for entry in sorted(os.listdir(folder)):
            if entry != want.name and not fnmatch.fnmatchcase(entry, f"{stem}.*{dot}{ext}"):
                continue
            path = folder / entry
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if os.path.samestat(st, src_st):
                return str(path)
            if (
                version.startswith("sha256:")
                and stat.S_ISREG(st.st_mode)
                and st.st_size == src_st.st_size
                and sha256_of(path) == version
            ):
                return str(path)
        return None

    def _place(self, src: Path, name: str, *, keep_source: bool) -> str:
        """Hard-link (or copy) ``src`` to a free name, never replacing a file; returns it."""
        final = unique_name(name, self._exists, time_tag())
        while True:
            dest = self._path(final)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dest, follow_symlinks=False)  # atomic; fails rather than overwrite
                break
            except FileExistsError:
                final = unique_name(final, self._exists, time_tag())
            except OSError:  # another file system, or links not allowed: copy exclusively
                try:
                    if special_kind(src.lstat().st_mode):
                        os.rename(src, dest)  # not a file to copy: the entry itself moves
                        return str(dest)
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
        if not os.path.lexists(src):
            raise FileNotFoundError(f"{ref.url} is no longer there")
        target = name or ref.name
        if isinstance(dest, LocalStore):
            # A move interrupted between the link and the unlink left a copy there already.
            earlier = dest._own_copy(src, target, ref.version)
            if earlier is not None:
                os.unlink(src)
                return earlier
            return dest._place(src, target, keep_source=False)
        if ref.special:  # nothing to upload: say what it was
            import tempfile

            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as note:
                target_of = os.readlink(src) if ref.special == "symbolic link" else ""
                note.write(f"{ref.name}: a {ref.special} {target_of}\n")
            try:
                url = dest.put(target + ".txt", note.name, "text/plain")
            finally:
                os.unlink(note.name)
        else:
            with open(src, "rb"):
                pass
            url = dest.put(target, str(src), "text/csv")
        os.unlink(src)
        return url

    def put(self, name: str, local_path: str, content_type: str) -> str:
        src = Path(local_path)
        src.chmod(0o666 & ~UMASK)  # a temporary file is private; a report is for people
        return self._place(src, name, keep_source=True)


class KeepOriginal(LocalStore):
    """A file given to ``batchdrop process`` from outside the inbound directory: the archive
    (or errors) gets a copy of its own (not a hard link, which an edit of the original would
    change too), and the user's file stays where it is."""

    def move(self, ref: FileRef, dest: FileStore, name: str | None = None) -> str:
        src = self._path(ref.name)
        if not os.path.lexists(src):
            raise FileNotFoundError(f"{ref.url} is no longer there")
        if ref.special:  # nothing to copy: the entry stays, and the receipt says so
            return str(src)
        import tempfile

        with tempfile.TemporaryDirectory(prefix="batchdrop-copy-") as tmp:
            copy = Path(tmp, Path(ref.name).name)
            shutil.copyfile(src, copy)
            staged = LocalStore(tmp)
            return staged.move(replace(ref, name=copy.name, url=str(copy)), dest, name or ref.name)
