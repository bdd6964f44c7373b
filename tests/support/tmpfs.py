"""A small, real tmpfs for full-disk tests (``mount -t tmpfs`` needs root: the test is skipped without it).

``small_tmpfs(path, size)`` mounts one and unmounts it at teardown; ``fill(path, leave)`` writes a
filler file until only ``leave`` bytes are free and returns it (delete it to give the space back).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def small_tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    mounted: list[Path] = []

    def mount(path: Path, size: str = "2m") -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (CI runs as root)")
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: Path, leave: int = 0) -> Path:
    """A filler file under ``path`` that leaves about ``leave`` bytes free."""
    filler = path / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):  # ENOSPC ends the filling
        while free_bytes(path) > leave:
            out.write(b"\0" * min(65536, max(4096, free_bytes(path) - leave)))
            out.flush()
    return filler
