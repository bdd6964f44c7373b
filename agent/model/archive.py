"""The one tar extractor for model packages, on the operator's machine and on the device.

A package archive comes from outside (a laptop, a fleet tool, a download), and the device
extracts it as root. So every member is checked *before* anything is written: only regular
files and directories, relative paths that stay inside the target, and bounded in total
unpacked size and in member count (a gzip bomb or a million empty files would otherwise fill
the SD card or the inode table the agent needs to keep running).
"""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from agent.errors import ModelError

MANIFEST = "manifest.yaml"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one package archive may unpack to."""

    max_bytes: int = 4 << 30  # 4 GiB: the largest model plus golden images, with room to spare
    max_members: int = 10_000  # files and directories together


DEFAULT_LIMITS = Limits()


def is_archive(path: Path) -> bool:
    return path.is_file() and tarfile.is_tarfile(path)


def extract(archive: Path, dest: Path, limits: Limits = DEFAULT_LIMITS) -> None:
    """Extract ``archive`` into ``dest`` (created); raise :class:`ModelError` naming the member.

    Nothing is written unless every member passes the checks; a failure part-way through the
    writing (a disk full) leaves whatever was written for the caller's temporary directory.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _checked_members(tar, archive, limits)
            dest.mkdir(parents=True, exist_ok=True)
            root = dest.resolve()
            for member in members:
                _write(tar, member, root)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ModelError(f"{archive.name} is not a readable package archive: {exc}") from exc


def unpack_package(archive: Path, dest: Path, limits: Limits = DEFAULT_LIMITS) -> Path:
    """Extract a package archive into ``dest``; return the package root (the folder with the manifest)."""
    extract(archive, dest, limits)
    roots = [p.parent for p in dest.rglob(MANIFEST)]
    if len(roots) != 1:
        raise ModelError(f"{archive.name} must hold exactly one {MANIFEST}, found {len(roots)}")
    return roots[0]


def _checked_members(tar: tarfile.TarFile, archive: Path, limits: Limits) -> list[tarfile.TarInfo]:
    """Read the headers one by one, stopping at the first that breaks a rule (before any data)."""
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        _check_member(member, archive)
        members.append(member)
        total += member.size
        if len(members) > limits.max_members:
            raise ModelError(f"{archive.name} has more than {limits.max_members} members")
        if total > limits.max_bytes:
            raise ModelError(f"{archive.name} would unpack to more than {limits.max_bytes} bytes")
    return members


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    name = PurePosixPath(member.name)
    if not member.name or name.is_absolute() or ".." in name.parts or member.name.startswith("\\"):
        raise ModelError(f"{archive.name}: refusing member {member.name!r} (absolute path or '..')")
    if not (member.isfile() or member.isdir()):
        raise ModelError(
            f"{archive.name}: refusing member {member.name!r} (links and special files are not allowed)"
        )


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path) -> None:
    target = root.joinpath(*PurePosixPath(member.name).parts).resolve()
    if not target.is_relative_to(root):  # cannot happen without links, checked anyway
        raise ModelError(f"refusing member {member.name!r} (outside the target directory)")
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    if source is None:  # a regular file always has a payload; a broken archive might not
        raise ModelError(f"refusing member {member.name!r} (no data)")
    with source, target.open("wb") as out:
        shutil.copyfileobj(source, out)
