"""The on-device model store: install, switch, roll back and prune model packages crash-safely.

Layout under the store root (``/var/lib/inspection-agent/models``)::

    {name}/{version}/      one complete package per version, never modified once in place
    {name}/current         symlink -> {version}; the agent's ``model.path`` points here
    {name}/history         versions in activation order, newest last (rollback goes back one)

Why this order of operations: a power cut at any step must leave ``current`` resolving to a
complete package, the old one or the new one, never none. A package is written into a hidden
``.incoming-*`` directory, every file and directory is fsynced, and only then renamed into
place; ``current`` is switched by creating ``current.tmp`` and ``os.replace``-ing it over
``current`` (rename(2) is atomic), then the directory is fsynced. History is written after the
switch, and rollback tolerates a history that missed the last switch.

``INSPECTION_MODELSTORE_PAUSE=<step>`` makes the named step sleep (after printing
``paused <step>`` on stderr) so a test can SIGKILL the process exactly there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.config.loader import read_yaml
from agent.errors import ConfigError, ModelError
from agent.model.package import file_sha256

MANIFEST = "manifest.yaml"
CURRENT = "current"
HISTORY = "history"
_INCOMING = ".incoming-"
_TRASH = ".trash-"
_RESERVED = {CURRENT, HISTORY, f"{CURRENT}.tmp", f"{HISTORY}.tmp"}
_HISTORY_MAX = 64
PAUSE_ENV = "INSPECTION_MODELSTORE_PAUSE"


def install_package(src: str | Path, store_root: str | Path) -> Path:
    """Copy a package directory or ``.tar``/``.tar.gz`` into ``{store}/{name}/{version}``.

    Installing the same content again is a no-op; a different package under an existing
    name/version is refused (a version is immutable once on a device).
    """
    src, store = Path(src), Path(store_root)
    store.mkdir(parents=True, exist_ok=True)
    with _locked(store), unpacked(src, store) as pkg:
        name, version = package_identity(pkg)
        dest = store / name / version
        dest.parent.mkdir(exist_ok=True)
        _adopt(dest.parent, store)
        _remove_leftovers(dest.parent)
        if dest.exists():
            if tree_digest(dest) != tree_digest(pkg):
                raise ModelError(
                    f"{name} {version} is already installed with other content; bump the version"
                )
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=_INCOMING, dir=dest.parent))
        _copy_tree(pkg, tmp)
        _pause("install-copied")
        _fsync_tree(tmp)
        _pause("install-synced")
        _adopt(tmp, store, recursive=True)
        tmp.rename(dest)
        _pause("install-renamed")
        _fsync_dir(dest.parent)
        return dest


def activate(store_root: str | Path, name: str, version: str) -> None:
    """Point ``{name}/current`` at an installed version atomically and record it in the history."""
    store = Path(store_root)
    with _locked(store):
        _activate(store / _safe(name, "name"), _safe(version, "version"))


def rollback(store_root: str | Path, name: str) -> str:
    """Switch ``current`` back one version (the previous entry of the history); return it."""
    store = Path(store_root)
    with _locked(store):
        model_dir = store / _safe(name, "name")
        current = _current(model_dir)
        entries = _read_history(model_dir)
        if current in entries:
            entries = entries[: len(entries) - 1 - entries[::-1].index(current)]
        while entries and (entries[-1] == current or not (model_dir / entries[-1] / MANIFEST).is_file()):
            entries.pop()
        if not entries:
            raise ModelError(f"{name}: no earlier version to roll back to (current: {current})")
        target = entries[-1]
        _switch(model_dir, target)
        _write_history(model_dir, entries)
        return target


def current_version(store_root: str | Path, name: str) -> str | None:
    return _current(Path(store_root) / _safe(name, "name"))


def history(store_root: str | Path, name: str) -> list[str]:
    return _read_history(Path(store_root) / _safe(name, "name"))


def prune(store_root: str | Path, name: str, keep: int = 3) -> list[str]:
    """Delete all but the current version and the ``keep - 1`` most recent before it.

    A version is first renamed to a hidden ``.trash-*`` name, so a cut in the middle of the
    deletion never leaves a half-deleted directory that looks like an installed version.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    store = Path(store_root)
    with _locked(store):
        model_dir = store / _safe(name, "name")
        keepers = _recent(model_dir, keep)
        _remove_leftovers(model_dir)
        removed = []
        for entry in sorted(model_dir.iterdir()):
            if (
                entry.is_dir()
                and not entry.is_symlink()
                and _is_version_name(entry.name)
                and entry.name not in keepers
            ):
                trash = model_dir / f"{_TRASH}{entry.name}"
                entry.rename(trash)
                _pause("prune-renamed")
                shutil.rmtree(trash)
                removed.append(entry.name)
        _fsync_dir(model_dir)
        return removed


def package_identity(pkg: Path) -> tuple[str, str]:
    """``(name, version)`` from a package's manifest, checked to be safe directory names."""
    manifest = read_manifest(pkg)
    name, version = manifest.get("name"), manifest.get("version")
    if name is None or version is None:
        raise ModelError(f"{pkg / MANIFEST}: needs both 'name' and 'version'")
    return _safe(str(name), "name"), _safe(str(version), "version")


def read_manifest(pkg: Path) -> dict[str, Any]:
    if not (pkg / MANIFEST).is_file():
        raise ModelError(f"{pkg}: no readable {MANIFEST}")
    try:  # the bounded loader: a manifest may come from anyone who can hand over a package
        data = read_yaml(pkg / MANIFEST, expand_env=False).data
    except ConfigError as exc:
        raise ModelError(str(exc)) from exc
    if not isinstance(data, dict):
        raise ModelError(f"{pkg / MANIFEST}: must be a mapping")
    return data


def verify_checksums(pkg: Path) -> None:
    """Check every model file the manifest names against its ``sha256`` (single value or map).

    A quick pre-check before ``inspection-agent model validate``: it catches a truncated or
    tampered file with a one-line reason without loading any runtime.
    """
    manifest = read_manifest(pkg)
    files, sums = manifest.get("file"), manifest.get("sha256")
    pairs = _file_sums(files, sums)
    if pairs is None:
        raise ModelError(
            f"{pkg / MANIFEST}: 'file' and 'sha256' must both be strings or maps with the same keys"
        )
    root = pkg.resolve()
    for rel, expected in pairs:
        path = (root / rel).resolve()
        if not path.is_relative_to(root):
            raise ModelError(f"{pkg / MANIFEST}: file {rel!r} points outside the package")
        if not path.is_file():
            raise ModelError(f"{pkg}: model file {rel!r} is missing")
        actual = file_sha256(path)
        if actual != str(expected).lower():
            raise ModelError(f"{pkg}: sha256 mismatch for {rel} (manifest {expected}, file {actual})")


def tree_digest(root: Path) -> str:
    """One sha256 over every file's relative path and content: "is this the same package?"."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def is_complete(pkg: Path) -> bool:
    """A package whose manifest reads and whose model files match their checksums."""
    try:
        verify_checksums(pkg)
    except ModelError:
        return False
    return True


# --- internals -------------------------------------------------------------------------------


def _file_sums(files: object, sums: object) -> list[tuple[str, str]] | None:
    if isinstance(files, str) and isinstance(sums, str):
        return [(files, sums)]
    if isinstance(files, dict) and isinstance(sums, dict) and files.keys() == sums.keys() and files:
        return [(str(files[k]), str(sums[k])) for k in files]
    return None


def _activate(model_dir: Path, version: str) -> None:
    if not (model_dir / version / MANIFEST).is_file():
        raise ModelError(f"{model_dir.name} {version} is not installed in {model_dir.parent}")
    entries = [v for v in _read_history(model_dir) if v != version]
    previous = _current(model_dir)
    if previous is not None and previous != version and previous not in entries[-1:]:
        entries.append(previous)  # a store made by hand: remember what was running
    _switch(model_dir, version)
    _write_history(model_dir, [*entries, version][-_HISTORY_MAX:])


def _switch(model_dir: Path, version: str) -> None:
    tmp = model_dir / f"{CURRENT}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(version)  # relative: the store can move (or be mounted elsewhere in a test)
    _adopt(tmp, model_dir.parent)
    _pause("activate-symlink")
    os.replace(tmp, model_dir / CURRENT)
    _pause("activate-replaced")
    _fsync_dir(model_dir)


def _current(model_dir: Path) -> str | None:
    """The version ``current`` names; an absolute link (the agent's own rollback may write one)
    is read as its last component, since versions are always direct children of the model dir."""
    try:
        target = os.readlink(model_dir / CURRENT)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return Path(target).name or None


def _read_history(model_dir: Path) -> list[str]:
    try:
        lines = (model_dir / HISTORY).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [line.strip() for line in lines if line.strip()]


def _write_history(model_dir: Path, entries: list[str]) -> None:
    tmp = model_dir / f"{HISTORY}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write("".join(f"{v}\n" for v in entries))
        fh.flush()
        os.fsync(fh.fileno())
    _adopt(tmp, model_dir.parent)
    _pause("history-written")
    os.replace(tmp, model_dir / HISTORY)
    _fsync_dir(model_dir)


def _recent(model_dir: Path, keep: int) -> set[str]:
    current = _current(model_dir)
    ordered = [v for v in _read_history(model_dir) if v != current]
    return {v for v in [current, *ordered[::-1][: keep - 1]] if v is not None}


def _is_version_dir(entry: Path) -> bool:
    return entry.is_dir() and not entry.is_symlink() and _is_version_name(entry.name)


def _is_version_name(name: str) -> bool:
    return not name.startswith(".") and name not in _RESERVED


def _safe(value: str, what: str) -> str:
    if not value or "/" in value or "\0" in value or not _is_version_name(value) or value == "..":
        raise ModelError(f"model {what} {value!r} cannot be used as a directory name in the store")
    return value


def _remove_leftovers(model_dir: Path) -> None:
    """Half-written ``.incoming-*`` and ``.trash-*`` directories from an interrupted run."""
    for entry in model_dir.iterdir():
        if entry.name.startswith((_INCOMING, _TRASH)):
            shutil.rmtree(entry, ignore_errors=True)


@contextlib.contextmanager
def unpacked(src: Path, workdir: Path) -> Iterator[Path]:
    """The package directory inside ``src``: the directory itself, or a tarball extracted safely
    into a temporary directory under ``workdir`` (removed on exit)."""
    if src.is_dir():
        yield src
        return
    if not src.is_file() or not tarfile.is_tarfile(src):
        raise ModelError(f"{src}: not a package directory or tar archive")
    with tempfile.TemporaryDirectory(prefix=_INCOMING, dir=workdir) as tmp:
        _extract(src, Path(tmp))
        tops = list(Path(tmp).iterdir())
        yield tops[0] if len(tops) == 1 and tops[0].is_dir() else Path(tmp)


def _extract(archive: Path, dest: Path) -> None:
    """Regular files and directories only, every path inside ``dest``: no links, devices or ``..``."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                target = (dest / member.name).resolve()
                if not target.is_relative_to(dest.resolve()) or not (member.isfile() or member.isdir()):
                    raise ModelError(f"{archive}: refusing archive member {member.name!r}")
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # isfile() members always have a payload
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ModelError(f"{archive}: unreadable archive ({exc})") from exc


def _copy_tree(src: Path, dest: Path) -> None:
    for path in sorted(src.rglob("*")):
        target = dest / path.relative_to(src)
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise ModelError(f"{path}: packages may only contain regular files and directories")
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            shutil.copyfile(path, target)
    dest.chmod(0o755)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            _fsync_dir(path)
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _adopt(path: Path, store: Path, recursive: bool = False) -> None:
    """Give what root (a flash over SSH) writes to the store's owner, so the agent running as
    ``inspection`` can itself restore ``current`` after a failed hot swap."""
    if os.geteuid() != 0:
        return
    owner = store.stat()
    paths = [path, *path.rglob("*")] if recursive else [path]
    for p in paths:
        os.chown(p, owner.st_uid, owner.st_gid, follow_symlinks=False)


@contextlib.contextmanager
def _locked(store: Path) -> Iterator[None]:
    """One writer at a time (a flash and the agent's own rollback may race); released on death."""
    with (store / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _pause(step: str) -> None:
    if os.environ.get(PAUSE_ENV) == step:
        sys.stderr.write(f"paused {step}\n")
        sys.stderr.flush()
        time.sleep(3600)
