"""The quality tools the project holds itself to, run by the test command CI runs.

ruff (lint rules and formatting, pyproject.toml's [tool.ruff]) over the whole tree, and mypy
--strict over the ``agent`` package ([tool.mypy]). Their versions are bounded in the ``dev``
extra, so a new release's new rules do not turn CI red on their own.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import REPO


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize(
    "command", [("ruff", "check", "."), ("ruff", "format", "--check", ".")], ids=["lint", "format"]
)
def test_ruff_is_clean(command: tuple[str, ...]) -> None:
    out = _run(*command)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_mypy_strict_is_clean_on_the_package() -> None:
    out = _run("mypy")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
