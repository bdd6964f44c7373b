"""Where the repository's committed fixtures are, and free loopback ports."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "models" / "demo-defects" / "1.0.0"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def demo_model() -> Path:
    return DEMO_MODEL
