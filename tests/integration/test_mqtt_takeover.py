"""Two devices with the same client id on a real mosquitto: the takeover is named, once, with the fix."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.config.schema import MqttConfig, OutboxConfig
from agent.protocol.topics import Topics
from agent.publish.mqtt import QUICK_DROPS, SESSION_TAKEN_OVER, Publisher
from tests.support.mosquitto import Mosquitto
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def twin(tmp_path: Path, unique_prefix: str) -> Iterator[Callable[[int, str], Publisher]]:
    """Publishers that all use one client id, as devices installed from one example config do."""
    made: list[Publisher] = []

    def make(port: int, name: str) -> Publisher:
        pub = Publisher(
            MqttConfig(port=port, reconnect_min_s=0.1, reconnect_max_s=1.6),
            OutboxConfig(path=f"{name}.db"),
            topics=Topics(unique_prefix, "plant-1", "line-1", "cam-01"),
            client_id=f"{unique_prefix}-plant-1-line-1-cam-01",
            password=None,
            base_dir=tmp_path,
            status_payload=dict,
        )
        made.append(pub)
        return pub

    yield make
    for pub in made:
        pub.stop("test over", timeout=2)


def test_a_second_device_with_the_same_client_id_is_named_once_with_the_fix(
    mosquitto: Mosquitto, twin: Callable[[int, str], Publisher], unique_prefix: str
) -> None:
    with capture_logs() as logs:
        first = twin(mosquitto.port, "first")
        first.start()
        assert wait_until(lambda: first.connected, timeout=15.0)
        second = twin(mosquitto.port, "second")
        second.start()
        taken = [first, second]
        # The broker drops whichever was there when the other connects; both keep retrying.
        assert wait_until(
            lambda: all(p.stats()["last_error"] for p in taken) and len(_events(logs)) >= 2, timeout=15.0
        )
        time.sleep(4.0)  # several rounds of the loop, with backoff

    client_id = f"{unique_prefix}-plant-1-line-1-cam-01"
    for pub in taken:
        error = pub.stats()["last_error"]
        assert error == (
            f"session taken over: another device uses client id {client_id}: "
            "give each device its own device.id (or mqtt.client_id)"
        )
    events = _events(logs)
    assert len(events) == 2, events  # once per publisher, not once per round
    assert all(e["client_id"] == client_id and "device.id" in e["fix"] for e in events)
    assert all("connections in a row" in str(e["evidence"]) for e in events)  # mosquitto 2.0.11: no 142
    # Named, not generic: the drops before the signature is clear, then none.
    assert len([e for e in logs if e["event"] == "mqtt_connection_lost"]) <= 2 * (QUICK_DROPS - 1)
    # Backoff: without it each round is ~0.1 s (40 rounds in 4 s); with it, a handful.
    assert first.stats()["reconnects"] + second.stats()["reconnects"] < 12


def _events(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == "mqtt_session_taken_over"]


def test_reason_code_142_is_named_on_the_first_drop(tmp_path: Path, unique_prefix: str) -> None:
    """A broker that says so (mosquitto >= 2.0.15, EMQX, HiveMQ): DISCONNECT 0x8E right after CONNACK.
    mosquitto here is 2.0.11, so a minimal MQTT 5 peer on a loopback socket sends those bytes."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    done = threading.Event()

    def broker() -> None:
        while not done.is_set():
            server.settimeout(0.2)
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(4096)  # CONNECT
                conn.sendall(bytes([0x20, 3, 0, 0, 0]))  # CONNACK: session present 0, success, no properties
                time.sleep(0.2)
                conn.sendall(bytes([0xE0, 2, SESSION_TAKEN_OVER, 0]))  # DISCONNECT 0x8E, no properties

    thread = threading.Thread(target=broker, daemon=True)
    thread.start()
    pub = Publisher(
        MqttConfig(port=port, reconnect_min_s=0.1, reconnect_max_s=1.0),
        OutboxConfig(path="o.db"),
        topics=Topics(unique_prefix, "s", "l", "d"),
        client_id="dup",
        password=None,
        base_dir=tmp_path,
        status_payload=dict,
    )
    try:
        with capture_logs() as logs:
            pub.start()
            assert wait_until(lambda: bool(_events(logs)), timeout=10)
        (event,) = _events(logs)
        assert "reason code 142" in str(event["evidence"]) and event["client_id"] == "dup"
        assert "another device uses client id dup" in str(pub.stats()["last_error"])
    finally:
        done.set()
        pub.stop("test over", timeout=2)
        thread.join(timeout=5)
        server.close()
