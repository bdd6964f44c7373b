"""The one adapter over paho-mqtt 2.x: connection, status, QoS 1 through the outbox, commands.

paho's network thread (``loop_start``) belongs to this object. Its callbacks only hand
results on: connection state into flags and the spool's queue, PUBACKs into the spool,
commands into the router's worker. Nothing blocks the caller of :meth:`Publisher.publish`.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent import events
from agent.config.schema import MqttConfig, OutboxConfig
from agent.config.secret import Secret
from agent.errors import PublishError
from agent.events import EventSink
from agent.mqtt import ClientSpec, describe_connect_error, new_client, new_properties
from agent.protocol.topics import Topics, check_publish_topic
from agent.publish.base import Message, Priority
from agent.publish.commands import CommandRequest, CommandRouter, reply_topic
from agent.publish.spool import Spool

log = structlog.get_logger(__name__)

SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason: a client connected with our client id
# Brokers that just close the old connection (mosquitto < 2.0.15, any MQTT 3.1.1 session) leave a
# signature instead: every connection accepted, then closed within seconds, again and again.
QUICK_DROP_S, QUICK_DROPS = 5.0, 3
SEND_WINDOW = 1000  # unacknowledged QoS 1 messages at once; the drain rate depends on it
BUSY_GAP_S = 0.005  # QoS 0 messages closer than this are batched by the outbox writer
_VALID_TOPICS = 256  # topics remembered as valid; the agent uses about ten
_OK = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)  # NO_CONN: paho keeps it, resends


class Publisher:
    """Publishes to one broker without ever blocking or losing a QoS 1 message."""

    def __init__(
        self,
        cfg: MqttConfig,
        outbox: OutboxConfig,
        *,
        topics: Topics,
        client_id: str,
        password: Secret | None,
        base_dir: Path,
        status_payload: Callable[[], dict[str, Any]],
        emit: EventSink | None = None,
    ) -> None:
        """``emit`` gets the events of the publisher itself (the outbox's disk filling up and recovering)."""
        self._cfg = cfg
        self.topics = topics
        self._status_payload = status_payload
        self._v5 = cfg.protocol == "5"
        path = Path(outbox.path).expanduser()
        path = path if path.is_absolute() else base_dir / path
        self._emit = emit
        self._spool = Spool(
            path, outbox.max_bytes, outbox.max_age_s, self, SEND_WINDOW, on_disk_full=self._disk_full
        )
        self._client_id = client_id
        self._takeovers = self._quick_drops = 0
        self._connected_at = 0.0
        self._client = self._make_client(client_id, password)
        self._router: CommandRouter | None = None
        self._connected = False
        self._started = self._stopped = False
        self._connects = 0
        self._qos0_sent = self._qos0_dropped = 0
        self._last_qos0 = 0.0  # monotonic time of the last QoS 0 publish (see _publish_qos0)
        self._valid_topics: set[str] = set()  # topics check_publish_topic accepted (see _check_topic)
        self._last_error: str | None = None
        self._fail_logged: str | None = None
        self.stop_reason: str | None = None  # what __exit__ says in the offline status

    def _make_client(self, client_id: str, password: Secret | None) -> paho.Client:
        cfg = self._cfg
        client = new_client(ClientSpec.from_mqtt(cfg, client_id, password))
        will = {"state": "offline", "reason": "connection lost", "device": self.topics.device}
        client.will_set(self.topics.status, json.dumps(will), qos=1, retain=True)
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)  # type: ignore[arg-type]
        # The spool bounds what is unacknowledged; paho's own limit rescans its whole queue on every
        # PUBACK (O(window) per message), which halves the drain rate.
        client.max_inflight_messages_set(0)
        client.connect_timeout = cfg.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Open the outbox and connect in the background (an unreachable broker is retried, not raised)."""
        if self._started:
            return
        self._started = True
        self._spool.start()
        props = None
        if self._v5:
            props = new_properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
        self._client.connect_async(self._cfg.host, self._cfg.port, self._cfg.keepalive_s, properties=props)
        self._client.loop_start()
        cfg = self._cfg
        log.info("mqtt_connecting", host=cfg.host, port=cfg.port, protocol=cfg.protocol)

    def stop(self, reason: str, timeout: float = 5.0) -> None:
        """Say offline (retained, with ``reason``), disconnect, and close the outbox. Idempotent."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        deadline = time.monotonic() + timeout
        self._spool.flush(min(0.5, timeout / 4))  # QoS 0 messages riding along go before the disconnect
        if self._connected:
            info = self._client.publish(self.topics.status, self._status_json("offline", reason), 1, True)
            _wait_published(info, deadline)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        if self._router is not None:
            self._router.close(max(0.1, deadline - time.monotonic()))
        self._spool.stop(max(0.5, deadline - time.monotonic()))
        log.info("publisher_stopped", reason=reason)

    def __enter__(self) -> Publisher:
        """``with Publisher(...) as pub:`` starts it; leaving the block stops it (see :meth:`__exit__`)."""
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        """Stop with ``stop_reason`` (the owner sets it: "SIGTERM", "camera failed"), or the exception
        that ended the block, so the retained offline status says why. Never swallows the exception."""
        reason = self.stop_reason
        if reason is None:
            reason = "stopped" if exc is None else f"error: {type(exc).__name__}: {exc}".splitlines()[0]
        self.stop(reason)

    @property
    def connected(self) -> bool:
        return self._connected

    # ---- publishing ------------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        priority: Priority,
        retain: bool = False,
        content_type: str | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
    ) -> None:
        """QoS 1: into the durable outbox, then sent. QoS 0: sent if connected, else dropped and counted."""
        if self._stopped:
            raise PublishError("publisher is stopped")
        limit = self._cfg.max_packet_bytes
        if len(payload) > limit:
            raise PublishError(f"{len(payload)}-byte payload on {topic} > mqtt.max_packet_bytes={limit}")
        if topic not in self._valid_topics:
            self._check_topic(topic)
        msg = Message(topic, payload, qos, priority, retain, content_type, tuple(user_properties))
        if qos == 1:
            self._spool.put(msg)
        elif qos == 0:
            self._publish_qos0(msg)
        else:
            raise PublishError(f"qos must be 0 or 1, not {qos}")

    def _check_topic(self, topic: str) -> None:
        """Validate a topic once: the agent publishes to a handful, thousands of times a minute."""
        problem = check_publish_topic(topic)
        if problem:
            raise PublishError(problem)
        if len(self._valid_topics) < _VALID_TOPICS:
            self._valid_topics.add(topic)

    def _publish_qos0(self, msg: Message) -> None:
        """Sent at once, or with the outbox writer's next burst when one is being gathered or QoS 0
        messages come faster than one per ``BUSY_GAP_S`` (one wake-up of paho's thread per burst)."""
        if not self._connected:  # dropped (and counted) at once, not when the burst goes
            self._qos0_dropped += 1
            return
        now = time.monotonic()
        busy, self._last_qos0 = now - self._last_qos0 < BUSY_GAP_S, now
        if not self._spool.ride_along(msg, busy=busy):
            self.send_volatile(msg)

    def send_volatile(self, msg: Message) -> None:
        """Send a QoS 0 message now if connected; a refusal is counted as a drop, never raised."""
        if not self._connected:
            self._qos0_dropped += 1
            return
        try:
            info = self._client.publish(msg.topic, msg.payload, 0, msg.retain, self._properties(msg))
        except ValueError as exc:  # checked in publish(); paho's own rules, should they differ
            self._qos0_dropped += 1
            log.warning("mqtt_send_failed", topic=msg.topic, error=str(exc))
            return
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._qos0_sent += 1
        else:
            self._qos0_dropped += 1

    def send(self, msg: Message) -> int:
        """The spool's transport: hand a stored QoS 1 message to paho (writer thread)."""
        try:
            info = self._client.publish(msg.topic, msg.payload, 1, msg.retain, self._properties(msg))
        except ValueError as exc:
            raise PublishError(f"paho refused {msg.topic}: {exc}") from exc
        if info.rc not in _OK:
            raise PublishError(f"paho refused {msg.topic}: {paho.error_string(info.rc)}")
        return int(info.mid)

    def _disk_full(self, full: bool, reason: str) -> None:
        """The spool's report (writer thread): an event through the outbox, which still takes events."""
        if self._emit is not None:
            self._emit(events.outbox_disk(full, reason, dict(self._spool.dropped)))

    def _properties(self, msg: Message) -> Properties | None:
        if not self._v5 or (msg.content_type is None and not msg.user_properties):
            return None
        props = new_properties(PacketTypes.PUBLISH)
        if msg.content_type is not None:
            props.ContentType = msg.content_type
        if msg.user_properties:
            props.UserProperty = list(msg.user_properties)
        return props

    def flush(self, timeout: float) -> bool:
        """Wait until every QoS 1 message accepted so far is committed to disk (maybe not yet sent)."""
        return self._spool.flush(timeout)

    def drain(self, timeout: float) -> bool:
        """Wait until the outbox is empty (every QoS 1 message acknowledged); False on timeout."""
        return self._spool.drain(timeout)

    def stats(self) -> dict[str, Any]:
        return {
            "connected": self._connected,
            "reconnects": max(0, self._connects - 1),
            "qos0_sent": self._qos0_sent,
            "qos0_dropped": self._qos0_dropped,
            "last_error": self._last_error,
            **self._spool.stats(),
        }

    # ---- commands --------------------------------------------------------------------------
    def on_command(self, router: CommandRouter) -> None:
        """Subscribe to this device's commands (now and on every reconnect) and dispatch them."""
        self._router = router
        if self._connected:
            self._client.subscribe(self.topics.cmd_filter, qos=1)

    def _reply(self, request: CommandRequest, response: dict[str, Any]) -> None:
        props = None
        if self._v5 and request.correlation is not None:
            props = new_properties(PacketTypes.PUBLISH)
            props.CorrelationData = request.correlation
        body = reply_json(response)
        try:
            self._client.publish(request.reply_topic, body, 1, False, props)
        except ValueError as exc:
            log.warning("command_reply_failed", topic=request.reply_topic, error=str(exc))

    def refresh_status(self) -> None:
        """Re-publish the retained online status because the app's state changed (the camera, say)."""
        if self._connected:
            status = self._status_json("online")
            self.publish(self.topics.status, status, qos=1, priority=Priority.EVENT, retain=True)

    def _status_json(self, state: str, reason: str | None = None) -> bytes:
        try:
            extra = self._status_payload() if state == "online" else {}
        except Exception:  # the app's callback must not prevent the status
            log.exception("status_payload_failed")
            extra = {}
        doc = {**extra, "state": state, "device": self.topics.device, "ts": int(time.time() * 1000)}
        if reason is not None:
            doc["reason"] = reason
        return json.dumps(doc, default=str).encode()

    def _go_online(self) -> None:
        """Runs on the spool's thread after each CONNACK, before the outbox is replayed."""
        if self._router is not None:
            self._client.subscribe(self.topics.cmd_filter, qos=1)
        self._client.publish(self.topics.status, self._status_json("online"), 1, True)

    # ---- paho callbacks (network thread): hand results on, nothing else ---------------------
    def _on_connect(self, _c: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self._note_failure(f"broker refused the connection: {rc} (code {rc.value})")
            return
        self._connected = True
        self._connected_at = time.monotonic()
        self._connects += 1
        self._fail_logged = None
        log.info("mqtt_connected", host=self._cfg.host, port=self._cfg.port, connects=self._connects)
        self._spool.online(self._go_online)

    def _on_connect_fail(self, _c: paho.Client, _u: Any) -> None:
        exc = sys.exc_info()[1]  # paho calls this inside its `except OSError`
        self._note_failure(
            f"cannot connect to {self._cfg.host}:{self._cfg.port}: {describe_connect_error(exc)}"
        )

    def _note_failure(self, error: str) -> None:
        self._last_error = error
        if error != self._fail_logged:  # one line per distinct cause, not one per retry
            self._fail_logged = error
            log.error("mqtt_connect_failed", error=error, retry="with backoff")

    def _on_disconnect(self, _c: paho.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any) -> None:
        was = self._connected
        self._connected = False
        self._spool.offline()
        if not was or self._stopped:
            return
        lived = time.monotonic() - self._connected_at
        evidence = self._takeover_evidence(rc, bool(flags.is_disconnect_packet_from_server), lived)
        if evidence is not None:
            self._taken_over(evidence)
            return
        self._last_error = f"connection lost: {rc}"
        log.warning("mqtt_connection_lost", reason=str(rc), retry="reconnecting")

    def _takeover_evidence(self, rc: ReasonCode, from_server: bool, lived: float) -> str | None:
        """Why this drop is another client taking our client id over, or None."""
        cfg = self._cfg
        if rc.value == SESSION_TAKEN_OVER:
            return "the broker said: Session taken over (reason code 142)"
        if lived > 2 * cfg.reconnect_max_s:  # the connection held: any fight over the id is over
            if self._takeovers:
                self._client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)  # type: ignore[arg-type]
            self._takeovers = self._quick_drops = 0
            return None
        if from_server:
            return None
        if self._takeovers:
            return "the broker keeps closing the connection"
        self._quick_drops = self._quick_drops + 1 if lived < QUICK_DROP_S else 0
        if self._quick_drops < QUICK_DROPS:
            return None
        return (
            f"the broker closed {QUICK_DROPS} connections in a row within {QUICK_DROP_S:.0f} s of accepting"
        )

    def _taken_over(self, evidence: str) -> None:
        """Two clients share our client id (two devices installed with the same device.id): the
        broker drops each when the other connects, forever. Say so once, with the fix, and back
        off (doubling up to reconnect_max_s) so the pair does not hammer the broker."""
        cfg = self._cfg
        self._takeovers += 1
        delay = min(cfg.reconnect_max_s, cfg.reconnect_min_s * 2**self._takeovers)
        self._client.reconnect_delay_set(delay, cfg.reconnect_max_s)  # type: ignore[arg-type]
        fix = "give each device its own device.id (or mqtt.client_id)"
        self._last_error = f"session taken over: another device uses client id {self._client_id}: {fix}"
        if self._takeovers == 1:
            log.error(
                "mqtt_session_taken_over",
                client_id=self._client_id,
                evidence=evidence,
                fix=fix,
                retry_in_s=delay,
            )

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        self._spool.acked(mid, f"{rc} (code {rc.value})" if rc.is_failure else None)

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, codes: list[ReasonCode], _p: Any) -> None:
        topic = self.topics.cmd_filter
        for rc in codes:
            if rc.is_failure:
                self._last_error = f"subscription to {topic} refused: {rc}"
                log.error("mqtt_command_subscription_refused", topic=topic, reason=str(rc))

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        name = self.topics.command_name(message.topic)
        if self._router is None or name is None:
            return
        props = getattr(message, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) if self._v5 else None
        correlation = getattr(props, "CorrelationData", None) if self._v5 else None
        target = reply_topic(message.topic, response_topic)
        request = CommandRequest(name, bytes(message.payload), target, correlation)
        self._router.submit(request, self._reply)


def _wait_published(info: paho.MQTTMessageInfo, deadline: float) -> None:
    """Wait for the offline status' PUBACK, bounded by ``deadline`` (it is best effort)."""
    done = threading.Event()
    while not done.is_set() and time.monotonic() < deadline:
        if info.is_published() or info.rc not in _OK:
            return
        done.wait(0.01)


def reply_json(response: dict[str, Any]) -> bytes:
    """A command reply as strict JSON: a NaN or an infinity anywhere (a status figure, a value a
    handler echoed) becomes null, because ``NaN``/``Infinity`` are not JSON and break consumers."""
    try:
        return json.dumps(response, default=str, allow_nan=False).encode()
    except ValueError:
        log.warning("command_reply_not_finite", command=response.get("command"))
        return json.dumps(_finite(response), default=str, allow_nan=False).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
