"""The one paho client factory: TLS refused with the config key of the side that asked, nothing leaked."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.config.schema import TlsConfig
from agent.config.secret import Secret
from agent.errors import ConfigError
from agent.mqtt.client import ClientSpec, new_client
from tests.support.certs import make_pki


@pytest.mark.parametrize("section", ["mqtt", "broker"])
def test_an_unreadable_ca_file_names_the_key_of_the_side_that_configured_it(
    tmp_path: Path, section: str
) -> None:
    spec = ClientSpec("c", section, tls=TlsConfig(ca_file=str(tmp_path / "missing.pem")))
    with pytest.raises(ConfigError, match=rf"^{section}\.tls\.ca_file: cannot load .*missing\.pem"):
        new_client(spec)


def test_an_unloadable_client_certificate_names_cert_file(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tls = TlsConfig(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.server_key))
    with pytest.raises(ConfigError, match=r"^broker\.tls\.cert_file: cannot load"):
        new_client(ClientSpec("c", "broker", tls=tls))


def test_turning_the_hostname_check_off_is_a_warning_naming_the_key(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with capture_logs() as logs:
        new_client(ClientSpec("c", "broker", tls=TlsConfig(ca_file=str(pki.ca), insecure_skip_verify=True)))
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert warning["event"] == "mqtt_tls_hostname_check_off"
    assert warning["key"] == "broker.tls.insecure_skip_verify"


def test_credentials_and_protocol_reach_paho() -> None:
    client = new_client(ClientSpec("dev-1", "mqtt", protocol="3.1.1", username="u", password=Secret("pw")))
    assert client._client_id == b"dev-1"
    assert client._username == b"u" and client._password == b"pw"
    assert client.protocol == 4  # MQTT 3.1.1
    v5 = new_client(ClientSpec("dev-2", "broker", manual_ack=True))
    assert v5.protocol == 5 and v5._manual_ack
