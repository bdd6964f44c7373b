"""The on-device model store: install, switch, roll back and prune model packages crash-safely.

Layout under the store root (``/var/lib/inspection-agent/models``)::

    {name}/{version}/      one complete package per version, never modified once in place
    {name}/current         symlink -> {version}; the agent's ``model.path`` points here
    {name}/shadow          symlink -> {version}, optional: the agent's shadow model when its
                           ``model.shadow`` is not set (``store shadow``, ``flash-model --shadow``)
    {name}/history         versions in activation order, newest last (rollback goes back one)

Why this order of operations: a power cut at any step must leave ``current`` resolving to a
complete package, the old one or the new one, never none. A package is checked (manifest and
every runtime file's sha256, through :func:`open_package`), written into a hidden
``.incoming-*`` directory, fsynced, and only then renamed into place; ``current`` is switched
by renaming a new link over it (rename(2) is atomic), then the directory is fsynced. History is
written after the switch, and rollback tolerates a history that missed the last switch.

Every crash-relevant point calls the store's ``on_step`` callback (a no-op by default); the
tests use it to kill the process exactly there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from agent import fsutil
from agent.errors import ModelError
from agent.model.archive import DEFAULT_LIMITS, Limits, is_archive, unpack_package
from agent.model.manifest import Manifest, read_manifest
from agent.model.package import MANIFEST, file_sha256, open_package

DEFAULT_ROOT = Path("/var/lib/inspection-agent/models")
CURRENT = "current"
SHADOW = "shadow"
HISTORY = "history"
_INCOMING = ".incoming-"
_TRASH = ".trash-"
_RESERVED = {CURRENT, SHADOW, HISTORY}
_HISTORY_MAX = 64

Step = Callable[[str], None]


def _no_step(step: str) -> None:
    """Production: nothing happens between the steps."""


class ModelStore:
    """One store root; every change holds the store's lock (a flash and the agent's rollback may race)."""

    def __init__(self, root: str | Path, *, on_step: Step = _no_step, limits: Limits = DEFAULT_LIMITS):
        self.root = Path(root)
        self._step = on_step
        self._limits = limits

    # --- changes ------------------------------------------------------------------------------
    def install(self, src: str | Path) -> Path:
        """Check and copy a package directory or tarball into ``{name}/{version}``; return that path.

        Installing the same content again is a no-op; a different package under an existing
        name/version is refused (a version is immutable once on a device).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked(), self.unpacked(Path(src)) as pkg:
            manifest = verify(pkg)
            dest = self.root / _safe(manifest.name, "name") / _safe(manifest.version, "version")
            dest.parent.mkdir(exist_ok=True)
            self._adopt(dest.parent)
            _remove_leftovers(dest.parent)
            if dest.exists():
                if tree_digest(dest) != tree_digest(pkg):
                    raise ModelError(
                        f"{manifest.name} {manifest.version} is already installed with other content; "
                        "bump the version"
                    )
                return dest
            self._copy_in(pkg, dest)
            return dest

    def activate(self, name: str, version: str) -> None:
        """Point ``{name}/current`` at an installed version atomically and record it in the history."""
        with self._locked():
            model_dir = self._model_dir(name)
            version = _safe(version, "version")
            if not (model_dir / version / MANIFEST).is_file():
                raise ModelError(f"{name} {version} is not installed in {self.root}")
            entries = [v for v in _read_history(model_dir) if v != version]
            previous = _current(model_dir)
            if previous is not None and previous != version and previous not in entries[-1:]:
                entries.append(previous)  # a store made by hand: remember what was running
            self._switch(model_dir, version)
            self._write_history(model_dir, [*entries, version][-_HISTORY_MAX:])

    def set_shadow(self, name: str, version: str | None) -> str | None:
        """Point ``{name}/shadow`` at an installed version (None removes it); return the one it replaced.

        The running agent picks the change up on its next reload (SIGHUP): it loads the new
        shadow beside the active model and drops the old one.
        """
        with self._locked():
            model_dir = self._model_dir(name)
            previous = _link(model_dir, SHADOW)
            if version is None:
                (model_dir / SHADOW).unlink(missing_ok=True)
                fsutil.fsync_dir(model_dir)
                return previous
            version = _safe(version, "version")
            if not (model_dir / version / MANIFEST).is_file():
                raise ModelError(f"{name} {version} is not installed in {self.root}")
            fsutil.replace_symlink(model_dir / SHADOW, version, prepare=self._prepared("shadow-symlink"))
            return previous

    def rollback(self, name: str) -> str:
        """Switch ``current`` back one version (the previous entry of the history); return it."""
        with self._locked():
            model_dir = self._model_dir(name)
            current = _current(model_dir)
            entries = _read_history(model_dir)
            if current in entries:
                entries = entries[: len(entries) - 1 - entries[::-1].index(current)]
            while entries and (entries[-1] == current or not (model_dir / entries[-1] / MANIFEST).is_file()):
                entries.pop()
            if not entries:
                raise ModelError(f"{name}: no earlier version to roll back to (current: {current})")
            self._switch(model_dir, entries[-1])
            self._write_history(model_dir, entries)
            return entries[-1]

    def prune(self, name: str, keep: int = 3) -> list[str]:
        """Delete all but the current version and the ``keep - 1`` most recent before it.

        A version is first renamed to a hidden ``.trash-*`` name, so a cut in the middle of the
        deletion never leaves a half-deleted directory that looks like an installed version.
        """
        if keep < 1:
            raise ModelError(f"keep must be at least 1, not {keep}")
        with self._locked():
            model_dir = self._model_dir(name)
            keepers = _recent(model_dir, keep)
            _remove_leftovers(model_dir)
            removed = []
            for entry in sorted(model_dir.iterdir()):
                if _is_version_dir(entry) and entry.name not in keepers:
                    trash = model_dir / f"{_TRASH}{entry.name}"
                    entry.rename(trash)
                    self._step("prune-renamed")
                    shutil.rmtree(trash)
                    removed.append(entry.name)
            fsutil.fsync_dir(model_dir)
            return removed

    # --- reading ------------------------------------------------------------------------------
    def current(self, name: str) -> str | None:
        return _current(self._model_dir(name))

    def shadow(self, name: str) -> str | None:
        """The version ``{name}/shadow`` names, or None when the model has no shadow."""
        return _link(self._model_dir(name), SHADOW)

    def history(self, name: str) -> list[str]:
        return _read_history(self._model_dir(name))

    def versions(self, name: str) -> list[str]:
        model_dir = self._model_dir(name)
        return sorted(p.name for p in model_dir.iterdir() if _is_version_dir(p)) if model_dir.is_dir() else []

    def models(self) -> list[str]:
        """Names of the models in the store (directories that hold a version or a ``current``)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _is_version_name(p.name) and (self.versions(p.name) or self.current(p.name))
        )

    @contextlib.contextmanager
    def unpacked(self, src: Path) -> Iterator[Path]:
        """The package directory ``src``, or a tarball extracted (bounded, no links) beside the store."""
        if src.is_dir():
            yield src
            return
        if not is_archive(src):
            raise ModelError(f"{src}: not a package directory or tar archive")
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=_INCOMING, dir=self.root) as tmp:
            yield unpack_package(src, Path(tmp), self._limits)

    # --- internals ----------------------------------------------------------------------------
    def _model_dir(self, name: str) -> Path:
        return self.root / _safe(name, "name")

    def _copy_in(self, pkg: Path, dest: Path) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=_INCOMING, dir=dest.parent))
        _copy_tree(pkg, tmp)
        self._step("install-copied")
        fsutil.fsync_tree(tmp)
        self._step("install-synced")
        self._adopt(tmp, recursive=True)
        tmp.rename(dest)
        self._step("install-renamed")
        fsutil.fsync_dir(dest.parent)

    def _switch(self, model_dir: Path, version: str) -> None:
        # relative target: the store can move (or be mounted elsewhere in a test)
        fsutil.replace_symlink(model_dir / CURRENT, version, prepare=self._prepared("activate-symlink"))
        self._step("activate-replaced")

    def _write_history(self, model_dir: Path, entries: list[str]) -> None:
        text = "".join(f"{v}\n" for v in entries)
        fsutil.write_atomic(model_dir / HISTORY, text, prepare=self._prepared("history-written"))

    def _prepared(self, step: str) -> Callable[[Path], None]:
        def prepare(tmp: Path) -> None:
            self._adopt(tmp)
            self._step(step)

        return prepare

    def _adopt(self, path: Path, recursive: bool = False) -> None:
        """Give what root (a flash over SSH) writes to the store's owner, so the agent running as
        ``inspection`` can itself restore ``current`` after a failed hot swap."""
        if os.geteuid() != 0:
            return
        owner = self.root.stat()
        for p in [path, *path.rglob("*")] if recursive else [path]:
            os.chown(p, owner.st_uid, owner.st_gid, follow_symlinks=False)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time; the lock is released when the process dies."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield


def restore_link(link: Path, target: Path) -> None:
    """Point a package link back at ``target`` after a failed hot swap.

    A store's ``{name}/current`` goes through the store (locked, fsynced, in the history, so a
    later ``store rollback`` knows); any other link is replaced atomically on its own.
    """
    if link.name == CURRENT and target.parent == link.parent.resolve():
        ModelStore(link.parent.parent).activate(link.parent.name, target.name)
    else:
        fsutil.replace_symlink(link, target)


def verify(pkg: Path) -> Manifest:
    """The package's manifest, after checking every runtime file against its sha256.

    A quick pre-check before ``inspection-agent model validate``: it catches a truncated or
    tampered file with a one-line reason without loading any runtime.
    """
    manifest_path = pkg / MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"{pkg}: no {MANIFEST}")
    manifest = read_manifest(manifest_path)
    for kind in manifest.files():
        open_package(pkg, kind)
    _safe(manifest.name, "name")
    _safe(manifest.version, "version")
    return manifest


def is_complete(pkg: Path) -> bool:
    """A package whose manifest reads and whose model files match their checksums."""
    try:
        verify(pkg)
    except ModelError:
        return False
    return True


def tree_digest(root: Path) -> str:
    """One sha256 over every file's relative path and content: "is this the same package?"."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _current(model_dir: Path) -> str | None:
    return _link(model_dir, CURRENT)


def _link(model_dir: Path, link: str) -> str | None:
    """The version ``current`` (or ``shadow``) names; an absolute link (written by hand, or by an
    older agent) is read as its last component, since versions are always direct children of the
    model dir."""
    try:
        target = os.readlink(model_dir / link)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return Path(target).name or None


def _read_history(model_dir: Path) -> list[str]:
    try:
        lines = (model_dir / HISTORY).read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [line.strip() for line in lines if line.strip()]


def _recent(model_dir: Path, keep: int) -> set[str]:
    """What prune keeps: current, the shadow (the agent runs it too), and the most recent before."""
    current = _current(model_dir)
    ordered = [v for v in _read_history(model_dir) if v != current]
    return {v for v in [current, _link(model_dir, SHADOW), *ordered[::-1][: keep - 1]] if v is not None}


def _is_version_dir(entry: Path) -> bool:
    return entry.is_dir() and not entry.is_symlink() and _is_version_name(entry.name)


def _is_version_name(name: str) -> bool:
    return not name.startswith(".") and name not in _RESERVED


def _safe(value: str, what: str) -> str:
    if not value or "/" in value or "\0" in value or not _is_version_name(value):
        raise ModelError(f"model {what} {value!r} cannot be used as a directory name in the store")
    return value


def _remove_leftovers(model_dir: Path) -> None:
    """What an interrupted run leaves: ``.incoming-*``/``.trash-*`` directories, ``.*.tmp`` links."""
    for entry in model_dir.iterdir():
        if entry.name.startswith((_INCOMING, _TRASH)):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(".") and entry.name.endswith(".tmp"):
            entry.unlink(missing_ok=True)


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
