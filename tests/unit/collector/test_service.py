"""The running collector's broker client: a bad TLS config is refused naming the collector's own keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collector.config import load_collector_config
from agent.collector.service import Collector
from agent.errors import ConfigError
from tests.support.certs import make_pki
from tests.unit.collector.conftest import Parts, write_config


def test_an_unreadable_ca_file_names_broker_tls_ca_file(tmp_path: Path, parts: Parts) -> None:
    cfg = load_collector_config(
        write_config(tmp_path, f"broker: {{tls: {{ca_file: {tmp_path}/none.pem}}}}\n")
    )
    with pytest.raises(ConfigError, match=r"^broker\.tls\.ca_file: cannot load") as err:
        Collector(cfg, parts.ingest)
    assert "mqtt." not in str(err.value)


def test_a_key_that_does_not_match_names_broker_tls_cert_file(tmp_path: Path, parts: Parts) -> None:
    pki = make_pki(tmp_path / "pki")
    tls = f"{{ca_file: {pki.ca}, cert_file: {pki.client_cert}, key_file: {pki.server_key}}}"
    cfg = load_collector_config(write_config(tmp_path, f"broker: {{tls: {tls}}}\n"))
    with pytest.raises(ConfigError, match=r"^broker\.tls\.cert_file: cannot load"):
        Collector(cfg, parts.ingest)
