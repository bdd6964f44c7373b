"""Fixtures shared by the whole suite live in tests/support/, one module per real service."""

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
