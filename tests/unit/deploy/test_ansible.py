"""The Ansible playbooks parse (``ansible-playbook --syntax-check``); a real run is in test_flash_model."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.paths import REPO

ANSIBLE = REPO / "deploy" / "ansible"


@pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not installed")
@pytest.mark.parametrize(
    ("playbook", "extra"), [("flash-model.yml", "package=x"), ("rollback.yml", "target=line3")]
)
def test_playbook_syntax(playbook: str, extra: str) -> None:
    result = subprocess.run(
        [
            "ansible-playbook",
            "--syntax-check",
            "-i",
            str(ANSIBLE / "inventory.ini"),
            str(ANSIBLE / playbook),
            "-e",
            extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
