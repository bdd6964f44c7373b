"""The running collector: one paho client (MQTT 5, persistent session, manual acks) and three stages.

paho's network thread only queues what arrives. A parser thread validates batches; a writer thread
stores each batch's objects (files or S3 PUTs); a recorder thread commits its rows through
:class:`Ingest`, and only then acknowledges each message (``client.ack``), in arrival order. The
broker keeps unacknowledged messages in our session (fixed client id, ``clean_start=False``, a
session expiry), so a crash or a kill loses nothing: they come again. On PostgreSQL the next
batch's uploads overlap this one's commit (one collector otherwise waits on each in turn).

A full disk (ENOSPC, SQLITE_FULL) is a state, not a failure: the stage keeps the batch,
acknowledges nothing, retries with a growing pause and resumes by itself once space returns
(restarting would not free any). Any other failure of a stage ends ``run()`` with an error,
and the watchdog is no longer fed, so systemd restarts the service.
"""

from __future__ import annotations

import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import paho.mqtt.client as paho
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.collector.accuracy import AccuracyPublisher
from agent.collector.config import CollectorConfig, broker_password
from agent.collector.index import Index, IndexFullError, IndexUnavailableError
from agent.collector.ingest import Ingest, Prepared, Stored
from agent.collector.messages import Incoming
from agent.collector.presign import PresignResponder
from agent.collector.storage import StorageFullError, StorageUnavailableError
from agent.errors import AgentError, first_line
from agent.mqtt import ClientSpec, describe_connect_error, new_client, new_properties
from agent.protocol.topics import fleet_filter
from agent.protocol.upload import FALLBACK, PRESIGNED, REQUEST_KIND, UPLOAD_PROPERTY
from agent.protocol.wire import META_PROPERTY
from agent.sdnotify import Notifier
from agent.threadnames import name_os_threads

log = structlog.get_logger(__name__)
T = TypeVar("T")

_TAKE_WAIT_S = 0.2
_DISK_FULL = (StorageFullError, IndexFullError)
# A database or object store that cannot be reached (restarting, network) is waited out like a full
# disk: the batch stays unacknowledged, and a restart would not bring the server back sooner.
_WAIT = (*_DISK_FULL, StorageUnavailableError, IndexUnavailableError)
_WAIT_EVENTS = {
    "disk_full": ("collector_disk_full", "collector_disk_recovered", "disk full, waiting for space"),
    "unavailable": (
        "collector_backend_unavailable",
        "collector_backend_recovered",
        "storage or index unreachable",
    ),
}
_RETRY_MIN_S, _RETRY_MAX_S = 0.5, 30.0
_RETRY_UNAVAILABLE_S = 4.0  # a restarted server is back within seconds: notice it soon


def subscriptions(cfg: CollectorConfig) -> list[str]:
    """Topic filters for every configured site, shared when a group is set."""
    sub = cfg.subscribe
    kinds = [
        k for k, on in (("sample", sub.samples), ("defect", sub.defects), (REQUEST_KIND, sub.samples)) if on
    ]
    return [
        fleet_filter(sub.prefix, kind, site=site, share_group=sub.shared_group)
        for site in sub.site_list
        for kind in kinds
    ]


def incoming(msg: paho.MQTTMessage) -> Incoming:
    props = getattr(msg, "properties", None)
    meta, upload = None, None
    for key, value in getattr(props, "UserProperty", None) or ():
        if key == META_PROPERTY:
            meta = value
        elif key == UPLOAD_PROPERTY:
            upload = value
    return Incoming(
        topic=msg.topic,
        payload=bytes(msg.payload),
        content_type=getattr(props, "ContentType", None),
        meta=meta,
        mid=msg.mid,
        qos=msg.qos,
        uploaded=upload == PRESIGNED,
        fallback=upload == FALLBACK,
    )


class Collector:
    """Subscribes, stores, acknowledges; ``run()`` until SIGTERM/SIGINT or a storage failure."""

    def __init__(self, cfg: CollectorConfig, ingest: Ingest, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.ingest = ingest
        self.notifier = notifier or Notifier(None)
        self._queue: queue.Queue[Incoming] = queue.Queue()
        self._stop = threading.Event()
        self.failure: AgentError | None = None
        self.state = "ok"  # "disk_full" while a batch waits for space
        self.connected = threading.Event()
        self._fail_logged: str | None = None
        s3 = cfg.storage.s3
        self._presign = PresignResponder(
            ingest.parser, ingest.storage, s3.presign_expiry_s if s3 else 600,
            lambda topic, payload, props: self._client.publish(topic, payload, qos=0, properties=props),
        )  # fmt: skip
        self._client = self._make_client()
        self._prepared: queue.Queue[tuple[list[Incoming], Prepared] | None] = queue.Queue(2)
        self._parser = threading.Thread(
            target=self._guarded(self._parse_loop), name="collector-parser", daemon=True
        )
        self._writer = threading.Thread(
            target=self._guarded(self._write_loop), name="collector-writer", daemon=True
        )
        self._stored: queue.Queue[tuple[list[Incoming], Prepared, Stored] | None] = queue.Queue(1)
        self._recorder = threading.Thread(
            target=self._guarded(self._record_loop), name="collector-recorder", daemon=True
        )
        # Sample ids of the batches stored but not yet recorded, oldest first. PostgreSQL: the next
        # batch's objects are uploaded while this one's rows commit (other connections of the pool),
        # unless they share an id. SQLite: one connection, so one batch at a time, as before.
        self._unrecorded: deque[frozenset[str]] = deque()
        self._recorded = threading.Condition()
        self._overlap = ingest.index.kind == "postgresql"
        # Its own connection to the index: read from the main loop while the writer thread writes (WAL).
        self._accuracy_index = Index(cfg.index_location)
        self._accuracy = AccuracyPublisher(
            cfg.accuracy, cfg.subscribe.prefix, self._accuracy_index, self._publish
        )

    def _make_client(self) -> paho.Client:
        """The shared factory's client (MQTT 5, manual acks); config errors name ``broker.…`` keys."""
        b = self.cfg.broker
        spec = ClientSpec(
            b.client_id, "broker", "5", b.username, broker_password(self.cfg), b.tls, manual_ack=True
        )
        client = new_client(spec)
        client.reconnect_delay_set(int(max(1, b.reconnect_min_s)), int(max(1, b.reconnect_max_s)))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # -- paho callbacks (network thread) -------------------------------------------------
    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker_refused", reason=str(reason))
            return
        topics = subscriptions(self.cfg)
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])
        self.connected.set()
        self._fail_logged = None
        log.info("collector_connected", subscriptions=topics)

    def _on_message(self, client: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic.endswith(f"/{REQUEST_KIND}"):  # a device asks where to upload: answered here, at once
            try:
                self._presign.handle(msg)
            except Exception:  # a bad request must not break the network thread
                log.exception("upload_request_failed", topic=msg.topic)
            client.ack(msg.mid, msg.qos)
            return
        self._queue.put(incoming(msg))

    def _on_connect_fail(self, _c: paho.Client, _u: Any) -> None:
        error = describe_connect_error(sys.exc_info()[1])  # paho calls this inside its `except OSError`
        if error != self._fail_logged:  # one line per distinct cause, not one per retry
            self._fail_logged = error
            b = self.cfg.broker
            log.error("collector_connect_failed", host=b.host, port=b.port, error=error)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("broker_connection_lost", reason=str(reason))

    # -- the writer ------------------------------------------------------------------------
    def _take(self) -> list[Incoming]:
        try:
            batch = [self._queue.get(timeout=_TAKE_WAIT_S)]
        except queue.Empty:
            return []
        while len(batch) < self.cfg.limits.batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _guarded(self, loop: Callable[[], None]) -> Callable[[], None]:
        """A stage whose unexpected death stops the collector (with an error) instead of going silent."""

        def run() -> None:
            try:
                loop()
            except Exception as exc:
                log.exception("collector_stage_failed", stage=threading.current_thread().name)
                self._fail(AgentError(f"collector stage failed: {type(exc).__name__}: {first_line(exc)}"))
                if threading.current_thread() is self._parser:
                    self._prepared.put(None)  # the writer must not wait for batches that never come
                elif threading.current_thread() is self._writer:
                    self._hand_over(None)  # nor the recorder

        return run

    def _fail(self, exc: AgentError) -> None:
        if self.failure is None:
            self.failure = exc
        self.state = "failed"
        self._stop.set()

    def _parse_loop(self) -> None:
        """Stage 1: validate batches; the writer fsyncs the previous one meanwhile (two cores busy)."""
        while not self._stop.is_set():
            self._prepare(self._take())
        for _ in range(-(-self._queue.qsize() // self.cfg.limits.batch)):  # stopping: what already came
            self._prepare(self._take())
        self._prepared.put(None)

    def _prepare(self, batch: list[Incoming]) -> None:
        if batch:
            self._prepared.put((batch, self.ingest.prepare(batch)))

    def _write_loop(self) -> None:
        """Stage 2: store each batch's objects, then hand it to the recorder (stage 3)."""
        while (item := self._prepared.get()) is not None:
            batch, prepared = item
            if self.failure is not None:
                continue  # nothing more is acknowledged: the broker keeps it all
            ids = frozenset(prepared.samples)
            with self._recorded:
                while self.failure is None and self._must_wait(ids):
                    self._recorded.wait(_TAKE_WAIT_S)
                self._unrecorded.append(ids)
            stored = self._durably(partial(self.ingest.store, prepared))
            if stored is None:
                self._settled(ids)
                continue
            self._hand_over((batch, prepared, stored))
        self._hand_over(None)

    def _hand_over(self, item: tuple[list[Incoming], Prepared, Stored] | None) -> None:
        """Queue for the recorder; dropped if it died (its guard has failed the collector then)."""
        while self._recorder.is_alive():
            try:
                self._stored.put(item, timeout=_TAKE_WAIT_S)
                return
            except queue.Full:
                pass

    def _must_wait(self, ids: frozenset[str]) -> bool:
        """Whether a batch must wait for the ones being recorded (the plan reads their rows)."""
        if not self._overlap:
            return bool(self._unrecorded)
        return any(ids & pending for pending in self._unrecorded)

    def _record_loop(self) -> None:
        """Stage 3: commit each stored batch's rows, then acknowledge its messages in arrival order."""
        while (item := self._stored.get()) is not None:
            batch, prepared, stored = item
            step = partial(self.ingest.record, prepared, stored)
            done = self.failure is None and self._durably(step) is not None
            self._settled(frozenset(prepared.samples))
            if done:
                for msg in batch:
                    self._client.ack(msg.mid, msg.qos)

    def _settled(self, ids: frozenset[str]) -> None:
        """A batch is recorded (or given up): a writer waiting on its ids may go on."""
        with self._recorded:
            self._unrecorded.remove(ids)
            self._recorded.notify_all()

    def _durably(self, step: Callable[[], T]) -> T | None:
        """Run a stage's step, waiting out a full disk or an unreachable server; None when it did
        not complete (stopping, or a failure that ends the collector)."""
        pause, since = _RETRY_MIN_S, time.monotonic()
        while True:
            try:
                result = step()
            except _WAIT as exc:
                state = "disk_full" if isinstance(exc, _DISK_FULL) else "unavailable"
                if self.state != state:
                    self.state = state
                    log.error(_WAIT_EVENTS[state][0], error=str(exc), queued=self._queue.qsize())
                    self.notifier.status(f"{_WAIT_EVENTS[state][2]}: {exc}")
                if self._stop.wait(pause):
                    return None  # stopping: unacknowledged, so the broker delivers it again
                pause = min(pause * 2, _RETRY_MAX_S if state == "disk_full" else _RETRY_UNAVAILABLE_S)
                continue
            except AgentError as exc:  # the disk or the index refused for good: let systemd restart us
                log.error("collector_cannot_store", error=str(exc))
                self._fail(exc)
                return None
            if self.state in _WAIT_EVENTS:
                log.info(_WAIT_EVENTS[self.state][1], waited_s=round(time.monotonic() - since, 1))
                self.state = "ok"
                self.notifier.status("collecting")
            return result

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        b = self.cfg.broker
        props = new_properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = b.session_expiry_s
        props.ReceiveMaximum = b.receive_maximum
        for stage in (self._recorder, self._writer, self._parser):  # each one's consumer first
            stage.start()
        self._client.connect_async(b.host, b.port, b.keepalive_s, clean_start=False, properties=props)
        self._client.loop_start()
        log.info("collector_starting", host=b.host, port=b.port, client_id=b.client_id)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> int:
        """Until a signal (exit 0) or a storage failure (raised: the CLI exits 3)."""
        self._install_signals()
        self.start()
        self.notifier.ready("collecting")
        last_report = time.monotonic()
        try:
            while not self._stop.wait(1.0):
                name_os_threads()  # top -H: collector-parse, collector-write, collector-recor, s3-put_0, ...
                if not all(t.is_alive() for t in (self._parser, self._writer, self._recorder)):
                    self._fail(self.failure or AgentError("a collector thread ended unexpectedly"))
                    break
                self.notifier.watchdog()
                if time.monotonic() - last_report >= self.cfg.stats_interval_s:
                    last_report = time.monotonic()
                    log.info("collector_stats", **self.stats())
                if self._accuracy.due(time.time()):
                    self._measure_accuracy()
        finally:
            self.close()
        if self.failure is not None:
            raise self.failure
        return 0

    def close(self, timeout: float = 10.0) -> None:
        """Store and acknowledge what already arrived, then disconnect (the rest comes again)."""
        self._stop.set()
        self.notifier.stopping()
        for thread in (self._parser, self._writer, self._recorder):
            if thread.is_alive():
                thread.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        self._accuracy_index.close()
        log.info("collector_stopped", **self.stats())

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def _measure_accuracy(self) -> None:
        """Per-item failure boundary: a bad query is logged; collecting goes on."""
        try:
            self._accuracy.tick()
        except (AgentError, OSError, ValueError) as exc:
            log.warning("line_accuracy_failed", error=str(exc))

    def stats(self) -> dict[str, Any]:
        return {
            **self.ingest.counts,
            "state": self.state,
            "queued": self._queue.qsize(),
            "connected": self.connected.is_set(),
        }

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        handler: Callable[..., None] = lambda *_: self.stop()  # noqa: E731
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGHUP, lambda *_: log.info("collector_stats", **self.stats()))
