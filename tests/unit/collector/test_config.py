"""The collector's config: defaults, subscriptions, every kind of mistake reported with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collector.config import load_collector_config
from agent.collector.service import subscriptions
from agent.errors import ConfigError


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_collector_config(path)


def test_minimal_config_and_shared_subscriptions(tmp_path: Path) -> None:
    cfg = load(tmp_path, "storage: {root: data}\n")
    assert cfg.root == (tmp_path / "data").resolve()  # type: ignore[attr-defined]
    assert cfg.index_path == cfg.root / "index.db"  # type: ignore[attr-defined]
    assert subscriptions(cfg) == [  # type: ignore[arg-type]
        "$share/collectors/inspection/+/+/+/sample",
        "$share/collectors/inspection/+/+/+/defect",
        "$share/collectors/inspection/+/+/+/upload",  # presigned-upload requests (sampling.upload)
    ]


def test_sites_list_and_no_group(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        "storage: {root: d}\nsubscribe: {prefix: a/b, sites: [s1, s2], shared_group: null, defects: false}\n",
    )
    assert subscriptions(cfg) == [  # type: ignore[arg-type]
        "a/b/s1/+/+/sample", "a/b/s1/+/+/upload", "a/b/s2/+/+/sample", "a/b/s2/+/+/upload",
    ]  # fmt: skip


def test_password_from_file(tmp_path: Path) -> None:
    from agent.collector.config import broker_password

    (tmp_path / "pw").write_text("s3cret\n")
    cfg = load(tmp_path, "storage: {root: d}\nbroker: {username: u, password_file: pw}\n")
    secret = broker_password(cfg)  # type: ignore[arg-type]
    assert secret is not None and secret.reveal() == "s3cret"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("broker: {port: 0}\n", "c.yaml:2: broker.port: must be between 1 and 65535"),
        ("subscribe: {sites: ['a/b']}\n", "subscribe.sites"),
        ("subscribe: {prefix: 'x/#'}\n", "subscribe.prefix"),
        ("subscribe: {shared_group: 'a b'}\n", "subscribe.shared_group"),
        ("limits: {batch: 0}\n", "limits.batch"),
        ("storage: {root: d, backend: nfs}\n", "storage.backend: must be one of 'local', 's3'"),
        ("storage: {root: d, backend: s3}\n", "storage.s3: backend s3 needs an s3 section"),
        ("broker: {password: a, password_file: b}\n", "broker.password: give only one"),
        ("unknown: 1\n", "unknown: unknown key"),
        ("broker: {client_id: 'a/b'}\n", "broker.client_id"),
    ],
)
def test_mistakes_are_reported_with_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    body = text if text.startswith("storage") else "storage: {root: d}\n" + text
    with pytest.raises(ConfigError) as info:
        load(tmp_path, body)
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_missing_storage_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="storage: missing required key"):
        load(tmp_path, "broker: {host: x}\n")
