"""A real mosquitto broker for tests, and a tiny real client to watch what arrives.

Use the fixtures:

- ``mosquitto``: a plain broker (anonymous, no TLS, no persistence) on a free loopback
  port, started for one test and killed after it.
- ``mosquitto_factory(**options)``: build custom ones (TLS, passwords, ACL, size limits,
  persistence); every broker it built is killed at teardown.
- ``broker_pki``: a fresh CA, broker certificate and client certificate (:mod:`tests.support.certs`).

A :class:`Mosquitto` keeps its port across ``stop()``/``start()``/``restart()``, for
broker-outage tests. :class:`Subscriber` connects with paho (MQTT 5), subscribes and
collects ``(topic, payload, properties)``; ``wait_for(n, timeout)`` returns once n arrived.

Each test should use its own topic prefix (``unique_prefix`` fixture) so brokers and
retained messages never mix tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.certs import TlsFiles, make_pki
from tests.support.paths import REPO, free_port

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
HOST = "127.0.0.1"


class Mosquitto:
    """One broker process, configured from keyword options, on a fixed loopback port."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        tls: TlsFiles | None = None,
        require_certificate: bool = False,
        passwords: Mapping[str, str] | None = None,
        acl: str | None = None,
        allow_anonymous: bool | None = None,
        message_size_limit: int | None = None,
        max_packet_size: int | None = None,
        persistence: bool = False,
        extra: Sequence[str] = (),
    ) -> None:
        """``acl`` is the text of a mosquitto ACL file; ``allow_anonymous`` defaults to ``not passwords``."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = HOST
        self.log_path = workdir / "mosquitto.log"
        self.conf_path = workdir / "mosquitto.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        lines = self._config(
            tls=tls,
            require_certificate=require_certificate,
            passwords=passwords,
            acl=acl,
            allow_anonymous=allow_anonymous,
            persistence=persistence,
        )
        if message_size_limit is not None:
            lines.append(f"message_size_limit {message_size_limit}")
        if max_packet_size is not None:
            lines.append(f"max_packet_size {max_packet_size}")
        self.conf_path.write_text("\n".join([*lines, *extra]) + "\n")

    def _config(
        self,
        *,
        tls: TlsFiles | None,
        require_certificate: bool,
        passwords: Mapping[str, str] | None,
        acl: str | None,
        allow_anonymous: bool | None,
        persistence: bool,
    ) -> list[str]:
        anonymous = not passwords if allow_anonymous is None else allow_anonymous
        lines = [
            # Tests run as root; without this mosquitto drops to 'mosquitto' and cannot read tmp files.
            "user root",
            "per_listener_settings false",
            f"listener {self.port} {HOST}",
            f"allow_anonymous {'true' if anonymous else 'false'}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_inflight_messages 0",
            "max_queued_messages 0",
        ]
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.server_cert}", f"keyfile {tls.server_key}"]
            if require_certificate:
                lines += ["require_certificate true"]
        if passwords:
            lines.append(f"password_file {self._password_file(passwords)}")
        if acl is not None:
            acl_path = self.workdir / "acl"
            acl_path.write_text(acl)
            lines.append(f"acl_file {acl_path}")
        return lines

    def _password_file(self, passwords: Mapping[str, str]) -> Path:
        path = self.workdir / "passwd"
        for i, (user, password) in enumerate(passwords.items()):
            flags = ["-c", "-b"] if i == 0 else ["-b"]
            subprocess.run(
                [MOSQUITTO_PASSWD, *flags, str(path), user, password], check=True, capture_output=True
            )
        return path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start the process and wait until the port accepts TCP connections."""
        if self.running:
            return self
        with open(self.workdir / "stderr.log", "ab") as err:
            self._proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf_path)], stdout=err, stderr=err, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s: {self.log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (clients see the connection drop), SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def restart(self, timeout: float = 10.0) -> Mosquitto:
        self.stop()
        return self.start(timeout)

    def log_tail(self, chars: int = 2000) -> str:
        text = ""
        for path in (self.workdir / "stderr.log", self.log_path):
            if path.exists():
                text += path.read_text(errors="replace")
        return text[-chars:]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.kill()


Received = tuple[str, bytes, Any]


class Subscriber:
    """A real paho client (MQTT 5) that subscribes to ``topic`` and collects what arrives.

    ``username``/``password``/``tls`` (an ``ssl.SSLContext``) for secured brokers. It can also
    publish (``publish``), e.g. to send a command with a response topic and correlation data.
    ``persistent=True`` keeps its session (one hour) and reconnects quickly, so with a
    ``persistence=True`` broker it misses nothing across a broker restart.
    """

    def __init__(
        self,
        port: int,
        topic: str | Sequence[str],
        *,
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        tls: Any = None,
        timeout: float = 10.0,
        persistent: bool = False,
    ) -> None:
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.suback: list[Any] = []
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls is not None:
            self._client.tls_set_context(tls)
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        props = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            self._client.reconnect_delay_set(0.1, 1)
        self._client.connect(HOST, port, keepalive=30, clean_start=not persistent, properties=props)
        self._client.loop_start()
        topics = [topic] if isinstance(topic, str) else list(topic)
        self._client.subscribe([(t, qos) for t in topics])
        if not self._subscribed.wait(timeout):
            self.close()
            raise TimeoutError(f"no SUBACK for {topics} within {timeout} s")

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        self.suback = list(codes)
        self._subscribed.set()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload), getattr(msg, "properties", None)))
            self._cond.notify_all()

    def wait_for(
        self, n: int, timeout: float = 10.0, where: Callable[[Received], bool] | None = None
    ) -> list[Received]:
        """Wait until ``n`` messages (matching ``where``) arrived; return them (maybe fewer on timeout)."""

        def matching() -> list[Received]:
            return [m for m in self.messages if where is None or where(m)]

        with self._cond:
            self._cond.wait_for(lambda: len(matching()) >= n, timeout)
            return matching()

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> None:
        props = None
        if response_topic is not None or correlation is not None:
            props = Properties(PacketTypes.PUBLISH)
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
        self._client.publish(topic, payload, qos, retain, props).wait_for_publish(5)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@pytest.fixture
def unique_prefix() -> str:
    """A topic prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A plain, anonymous broker for this test."""
    broker = Mosquitto(tmp_path / "mosquitto").start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """``mosquitto_factory(**Mosquitto options, start=True)``; every broker built is killed at teardown."""
    brokers: list[Mosquitto] = []

    def build(start: bool = True, **options: Any) -> Mosquitto:
        broker = Mosquitto(tmp_path / f"mosquitto-{len(brokers)}", **options)
        brokers.append(broker)
        return broker.start() if start else broker

    try:
        yield build
    finally:
        for broker in brokers:
            broker.kill()


@pytest.fixture
def broker_pki(tmp_path: Path) -> TlsFiles:
    return make_pki(tmp_path / "pki")


def env_without_proxies() -> dict[str, str]:
    """The environment for a helper subprocess, with the repository importable."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = str(REPO)
    return env
