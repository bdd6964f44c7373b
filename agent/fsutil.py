"""Crash-safe file operations: fsync, atomic write, atomic rename, atomic symlink replace.

A power cut on an SD card must leave either the old or the new file, never half of one.
rename(2) is atomic, but only durable once the directory holding the new name is fsynced,
and a renamed file's content only once the file itself was fsynced before the rename.
Every writer in the agent that needs this (model store, model-state.json, collector storage,
health report) goes through these few functions, so the order of operations lives in one place.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

Prepare = Callable[[Path], None]


def fsync_fd(fd: int, *, close: bool = False) -> None:
    """fsync an open descriptor; ``close`` closes it whatever happens (for thread pools)."""
    try:
        os.fsync(fd)
    finally:
        if close:
            os.close(fd)


def fsync_file(path: Path) -> None:
    fsync_fd(os.open(path, os.O_RDONLY), close=True)


def fsync_dir(path: Path) -> None:
    """Make the names in ``path`` (a rename, a new file) durable."""
    fsync_fd(os.open(path, os.O_RDONLY | os.O_DIRECTORY), close=True)


def fsync_tree(root: Path) -> None:
    """Every file, then every directory bottom-up, then ``root`` itself."""
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_symlink():
            continue
        if path.is_file():
            fsync_file(path)
        else:
            fsync_dir(path)
    fsync_dir(root)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_atomic(
    path: Path, data: bytes | str, *, durable: bool = True, prepare: Prepare | None = None
) -> None:
    """Replace ``path`` with ``data``: readers see the old or the new content, never a mix.

    ``durable=False`` skips the fsyncs, for files rewritten every few seconds (an SD card
    wears out) where losing the last version on a power cut is fine. ``prepare`` gets the
    complete temporary file just before the rename (to chown it, for instance).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = _tmp_name(path)
    with _removed_on_failure(tmp):
        with tmp.open("wb") as fh:
            fh.write(payload)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if prepare is not None:
            prepare(tmp)
        rename_atomic(tmp, path, durable=durable)


def rename_atomic(src: Path, dst: Path, *, durable: bool = True) -> None:
    """``os.replace`` then fsync the directory (both directories when it moves between two)."""
    os.replace(src, dst)
    if durable:
        fsync_dir(dst.parent)
        if src.parent.resolve() != dst.parent.resolve():
            fsync_dir(src.parent)


def replace_symlink(
    link: Path, target: str | Path, *, durable: bool = True, prepare: Prepare | None = None
) -> None:
    """Point symlink ``link`` at ``target`` atomically: a new link renamed over the old one.

    ``target`` is written as given, so a relative target keeps a tree movable; ``prepare``
    gets the new link before it replaces the old one.
    """
    tmp = _tmp_name(link)
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    with _removed_on_failure(tmp):
        if prepare is not None:
            prepare(tmp)
        rename_atomic(tmp, link, durable=durable)


@contextlib.contextmanager
def _removed_on_failure(tmp: Path) -> Iterator[None]:
    """Whatever stops a write-then-rename (an error, Ctrl-C) leaves no temporary file behind."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
