"""Fixtures shared by the whole suite live in tests/support/, one module per real service."""

import pytest

pytest_plugins = [
    "tests.support.paths",
    "tests.support.agentproc",
    "tests.support.mosquitto",
    "tests.support.rtsp",
    "tests.support.sshd",
    "tests.support.browser",
    "tests.support.tmpfs",
    "tests.support.postgres",
    "tests.support.s3",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs TensorFlow (``train``) must also be ``slow``: ``scripts/test.sh --quick``
    (``-m "not slow"``) installs no TensorFlow, and such a test would fail there, not be left out."""
    unmarked = [
        item.nodeid
        for item in items
        if item.get_closest_marker("train") and not item.get_closest_marker("slow")
    ]
    if unmarked:
        raise pytest.UsageError("marked train but not slow: " + ", ".join(unmarked))
