"""The paho client factory, the one-shot connection probe, and the one-line connect-error text."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config.schema import MqttConfig, TlsConfig
from agent.config.secret import Secret
from agent.errors import PublishError
from agent.mqtt.tls import tls_context


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """Who connects and how: everything paho needs before ``connect``, from either side's config.

    ``section`` is where this side keeps its broker settings (``mqtt`` on a device, ``broker`` in
    the collector); config errors name keys under it.
    """

    client_id: str
    section: str = "mqtt"
    protocol: Literal["5", "3.1.1"] = "5"
    username: str | None = None
    password: Secret | None = None
    tls: TlsConfig | None = None
    manual_ack: bool = False  # the collector acknowledges a message only once it is stored

    @classmethod
    def from_mqtt(cls, cfg: MqttConfig, client_id: str, password: Secret | None) -> ClientSpec:
        """A device's client from its ``mqtt`` section (the password read from wherever it is kept)."""
        return cls(client_id, "mqtt", cfg.protocol, cfg.username, password, cfg.tls)


def new_client(spec: ClientSpec) -> paho.Client:
    """A paho client with the protocol, credentials and TLS of ``spec`` (no callbacks, not connected).

    Raises :class:`ConfigError` naming ``{section}.tls.…`` when a TLS file cannot be used.
    """
    # The TLS context first: a config it refuses fails before anything is made.
    context = tls_context(spec.tls, spec.section) if spec.tls is not None else None
    v5 = spec.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=spec.client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else True,
        manual_ack=spec.manual_ack,
    )
    if spec.username is not None or spec.password is not None:
        password = spec.password.reveal() if spec.password is not None else None
        client.username_pw_set(spec.username, password)
    if spec.tls is not None and context is not None:
        client.tls_set_context(context)
        # The context checks the hostname itself; paho's own check would use
        # ssl.match_hostname (gone in Python 3.12) when that is turned off.
        client.tls_insecure_set(spec.tls.insecure_skip_verify)
    return client


def probe(spec: ClientSpec, host: str, port: int, *, keepalive: int, timeout: float) -> str:
    """Connect once (TCP, TLS, MQTT CONNECT) and disconnect; raise PublishError with the broker's reason."""
    client = new_client(spec)
    outcome: dict[str, str] = {}
    done = threading.Event()

    def on_connect(_c: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        outcome["rc"] = "" if not rc.is_failure else f"broker refused the connection: {rc} (code {rc.value})"
        done.set()

    client.on_connect = on_connect
    client.connect_timeout = timeout
    try:
        client.connect(host, port, keepalive=max(5, keepalive))
    except (OSError, ssl.SSLError) as exc:
        raise PublishError(f"cannot connect to {host}:{port}: {describe_connect_error(exc)}") from exc
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise PublishError(f"{host}:{port} accepted TCP but sent no CONNACK within {timeout:.0f} s")
        if outcome["rc"]:
            raise PublishError(outcome["rc"])
    finally:
        client.disconnect()
        client.loop_stop()
    return f"{host}:{port} accepted MQTT {spec.protocol}" + (" over TLS" if spec.tls else "")


def new_properties(packet_type: int) -> Properties:
    """MQTT 5 properties for one packet type (paho's constructor carries no annotations)."""
    return Properties(packet_type)  # type: ignore[no-untyped-call]


def describe_connect_error(exc: BaseException | None) -> str:
    """One line for a failed connection attempt: TLS failures name the certificate problem."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return (str(exc) or type(exc).__name__) if exc is not None else "unknown error"
