"""Where sample images live: a small interface, and the local-directory backend.

``write_batch`` returns only once every file and its directory entry are on disk, so
the collector may acknowledge the messages afterwards. fsync costs ~5 ms per call on a
typical disk; a batch is written first and synced by a few threads at once, which lets
the filesystem put many files in one journal commit (measured: ~1 ms per 50 KB file).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agent.collector.config import CollectorConfig
    from agent.collector.s3 import S3Storage

from agent import fsutil
from agent.errors import AgentError

_SYNC_THREADS = 16


class Storage(Protocol):
    """Keys are relative POSIX paths (``model/version/unlabeled/label/ID.jpg``)."""

    def write_batch(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store every item durably (replacing a file of the same key) before returning."""
        ...

    def create_batch(self, items: Sequence[tuple[str, bytes]]) -> set[str]:
        """Like ``write_batch``, but never replaces an object: returns the keys already taken."""
        ...

    def move(self, src: str, dst: str) -> None:
        """Rename durably; the destination's directory is created."""
        ...

    def read(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def entries(self) -> Iterator[tuple[str, int, float]]:
        """(key, size, modification time) of every stored object."""
        ...

    def close(self) -> None: ...


class StorageError(AgentError):
    """The storage backend cannot write or move a file."""


class StorageUnavailableError(StorageError):
    """The object store cannot be reached now (stopped, network, 5xx): the collector waits and retries."""


class StorageFullError(StorageError):
    """ENOSPC/EDQUOT: no room now. Never corruption; the collector waits for space and retries."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


class LocalStorage:
    """Files under ``root``: write to a temporary name, fsync, rename, fsync the directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pool = ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="fsync")

    def path(self, key: str) -> Path:
        return self.root / key

    def write_batch(self, items: Sequence[tuple[str, bytes]]) -> None:
        if not items:
            return
        staged: list[tuple[int, Path, Path]] = []
        dirs: set[Path] = set()
        renamed = 0
        try:
            for key, data in items:
                staged.append(self._stage(key, data, dirs))
            fds = [fd for fd, _, _ in staged]  # fsync_fd closes every one, whatever happens
            staged = [(-1, tmp, final) for _, tmp, final in staged]
            list(self._pool.map(partial(fsutil.fsync_fd, close=True), fds))
            for _, tmp, final in staged:
                os.replace(tmp, final)
                renamed += 1
            list(self._pool.map(fsutil.fsync_dir, dirs))
        except OSError as exc:
            for fd, tmp, _ in staged[renamed:]:
                if fd >= 0:
                    os.close(fd)
                _unlink(tmp)  # a full disk must get its space back before the retry
            error = StorageFullError if exc.errno in _FULL else StorageError
            raise error(f"cannot store samples under {self.root}: {exc.strerror or exc}") from exc

    def create_batch(self, items: Sequence[tuple[str, bytes]]) -> set[str]:
        """A local root has one writer (its collector's ingest thread, batches in order), and the
        index tells it which ids are stored before it writes: no other writer can take a key
        meanwhile, so writing is creating here. (Collectors that share a dataset use S3.)"""
        self.write_batch(items)
        return set()

    def _stage(self, key: str, data: bytes, dirs: set[Path]) -> tuple[int, Path, Path]:
        final = self.path(key)
        if final.parent not in dirs:
            dirs.update(self._ensure_dir(final.parent))
        tmp = self._tmp(final)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            os.close(fd)
            _unlink(tmp)
            raise
        return fd, tmp, final

    @staticmethod
    def _tmp(final: Path) -> Path:
        return final.with_name(f".{final.name}.tmp")

    def _ensure_dir(self, path: Path) -> list[Path]:
        """Create ``path``; return it and, for each directory created, its parent (to be synced)."""
        dirs = [path]
        missing = path
        while not missing.exists() and missing != self.root:
            dirs.append(missing.parent)
            missing = missing.parent
        path.mkdir(parents=True, exist_ok=True)
        return dirs

    def move(self, src: str, dst: str) -> None:
        source, target = self.path(src), self.path(dst)
        try:
            dirs = {*self._ensure_dir(target.parent), source.parent}
            os.replace(source, target)
            for directory in dirs:
                fsutil.fsync_dir(directory)
        except OSError as exc:
            raise StorageError(f"cannot move {src} to {dst}: {exc.strerror or exc}") from exc

    def read(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from exc

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        _unlink(self.path(key))

    def entries(self) -> Iterator[tuple[str, int, float]]:
        """(key, size, modification time) of every regular file under the root (for fsck and migrate)."""
        for directory, _dirs, names in os.walk(self.root):
            for name in names:
                path = Path(directory) / name
                st = path.lstat()
                if stat.S_ISREG(st.st_mode):
                    yield path.relative_to(self.root).as_posix(), st.st_size, st.st_mtime

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):  # already gone; `collector fsck` reports any leftover
        os.unlink(path)


def make_storage(backend: str, root: Path) -> LocalStorage:
    """The local backend under ``root`` (``open_storage`` picks the configured one)."""
    if backend != "local":
        raise StorageError(f"unknown storage backend {backend!r}")
    root.mkdir(parents=True, exist_ok=True)
    return LocalStorage(root)


def open_storage(cfg: CollectorConfig) -> LocalStorage | S3Storage:
    """The configured backend: ``local`` files under ``storage.root``, or ``s3`` (imported only then)."""
    if cfg.storage.backend == "s3":
        from agent.collector.config import s3_secret_key
        from agent.collector.s3 import S3Storage

        assert cfg.storage.s3 is not None  # the config check requires the section
        return S3Storage(cfg.storage.s3, s3_secret_key(cfg))
    return make_storage("local", cfg.root)
