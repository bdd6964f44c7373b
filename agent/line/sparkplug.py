"""A Sparkplug B edge node on the agent's broker (extra ``sparkplug``): NBIRTH/NDEATH with bdSeq,
DBIRTH/DDATA with the counters and the last result, NCMD rebirth and a DCMD ``Trigger`` metric.

Sparkplug needs its own MQTT session: NDEATH must be that session's Last Will, which the agent's
own connection already uses for its status. Topics: ``spBv1.0/{group}/{type}/{node}[/{device}]``,
group/node/device default to the device's site/line/id. Messages go out at QoS 0 (Sparkplug's
rule for data) except births and deaths; a command that does not decode is counted and dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from agent.config import read_password
from agent.config.schema import AgentConfig
from agent.fsutil import write_atomic
from agent.line import require
from agent.line.sparkplug_pb import DataType, payload_class
from agent.line.state import LineState, Snapshot

log = structlog.get_logger(__name__)

NAMESPACE = "spBv1.0"
MIN_INTERVAL_S = 0.1  # DDATA at most this often: SCADA needs the numbers, not every frame
REBIRTH = "Node Control/Rebirth"
BDSEQ_FILE = "sparkplug-bdseq"  # in state.dir: the last session's bdSeq, so a restart takes the next one

# Device metrics: (name, alias, datatype, value from a snapshot).
METRICS: tuple[tuple[str, int, DataType, Callable[[Snapshot], Any]], ...] = (
    ("Parts", 1, DataType.UINT64, lambda s: s.parts),
    ("Defects", 2, DataType.UINT64, lambda s: s.defects),
    ("Last/Label", 3, DataType.STRING, lambda s: s.label),
    ("Last/LabelIndex", 4, DataType.UINT32, lambda s: s.label_index),
    ("Last/Score", 5, DataType.DOUBLE, lambda s: s.score),
    ("Last/LatencyMs", 6, DataType.DOUBLE, lambda s: s.latency_ms),
    ("Last/Defect", 7, DataType.BOOLEAN, lambda s: s.defect),
    ("State", 8, DataType.STRING, lambda s: s.state),
    ("Model/Version", 9, DataType.STRING, lambda s: s.model_version),
    ("Triggers", 10, DataType.UINT64, lambda s: s.triggers),
    ("Missed", 11, DataType.UINT64, lambda s: s.missed),
    ("Overlapped", 12, DataType.UINT64, lambda s: s.overlapped),
    ("Rejects", 13, DataType.UINT64, lambda s: s.rejects),
    ("LateRejects", 14, DataType.UINT64, lambda s: s.late_rejects),
    ("Trigger", 15, DataType.BOOLEAN, lambda s: False),  # write true with a DCMD to inspect a part
)
_VALUE_FIELD = {
    DataType.UINT32: "int_value",
    DataType.UINT64: "long_value",
    DataType.DOUBLE: "double_value",
    DataType.BOOLEAN: "boolean_value",
    DataType.STRING: "string_value",
}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _next_bd_seq(path: Path) -> int:
    """The bdSeq for this process's first session: one past the last one used (0 the first time).

    A host application matches an NDEATH to its NBIRTH by bdSeq; starting again at 0 after a restart
    would let the previous run's late will kill the new session. Written at once, atomically.
    """
    try:
        last = int(path.read_text(encoding="ascii").strip())
        bd_seq = (last + 1) % 256 if 0 <= last < 256 else 0
    except FileNotFoundError:
        bd_seq = 0
    except (OSError, ValueError) as exc:  # unreadable or garbage: start over, say so once
        log.warning("sparkplug_bdseq_unreadable", path=str(path), error=str(exc)[:200])
        bd_seq = 0
    _save_bd_seq(path, bd_seq)
    return bd_seq


def _save_bd_seq(path: Path, bd_seq: int) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, f"{bd_seq}\n")
    except OSError as exc:  # a read-only state dir costs continuity across a restart, not the session
        log.warning("sparkplug_bdseq_not_saved", path=str(path), error=str(exc)[:200])


class SparkplugNode:
    name = "sparkplug"

    def __init__(self, cfg: AgentConfig, *, state: LineState, fire: Callable[[str], Any]) -> None:
        require("google.protobuf", "sparkplug")
        self._payload = payload_class()
        sp, dev = cfg.sparkplug, cfg.device
        self.group, self.node = sp.group_id or dev.site, sp.edge_node_id or dev.line
        self.device = sp.device_id or dev.id
        self.cfg = cfg
        self._state = state
        self._fire = fire
        self._bd_path = cfg.state_dir / BDSEQ_FILE
        self.bd_seq = _next_bd_seq(self._bd_path)
        self._seq = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._born = False
        self._last: dict[str, Any] = {}
        self.malformed = 0
        self._client = self._make_client(cfg)
        self._thread = threading.Thread(target=self._publish_loop, name="sparkplug", daemon=True)

    def topic(self, kind: str, device: bool = False) -> str:
        base = f"{NAMESPACE}/{self.group}/{kind}/{self.node}"
        return f"{base}/{self.device}" if device else base

    # -- session ----------------------------------------------------------------------
    def _make_client(self, cfg: AgentConfig) -> Any:
        from agent.mqtt.client import ClientSpec, new_client

        client_id = f"{cfg.mqtt.client_id or cfg.topic_root.replace('/', '-')}-sparkplug"
        spec = ClientSpec.from_mqtt(cfg.mqtt, client_id, read_password(cfg.mqtt, cfg.base_dir))
        client = new_client(spec)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(
            max(1, round(cfg.mqtt.reconnect_min_s)), max(1, round(cfg.mqtt.reconnect_max_s))
        )
        self._set_will(client)
        return client

    def _set_will(self, client: Any) -> None:
        client.will_set(self.topic("NDEATH"), self._death(), qos=1, retain=False)

    def _death(self) -> bytes:
        p = self._payload(timestamp=_now_ms())
        p.metrics.add(name="bdSeq", datatype=DataType.UINT64, long_value=self.bd_seq, timestamp=_now_ms())
        return bytes(p.SerializeToString())

    def start(self) -> None:
        m = self.cfg.mqtt
        self._client.connect_async(m.host, m.port, keepalive=m.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        """A clean stop says NDEATH itself (the broker only sends the will on a lost connection)."""
        self._stop.set()
        self._state.changed.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        if self._born:
            self._client.publish(self.topic("NDEATH"), self._death(), qos=1).wait_for_publish(2.0)
        self._client.disconnect()
        self._client.loop_stop()

    def clients(self) -> int:
        """1 while this node's broker session is up and born, else 0."""
        return int(self._born)

    def _on_connect(self, client: Any, _u: Any, _flags: Any, rc: Any, _props: Any = None) -> None:
        if rc.is_failure:
            log.warning("sparkplug_connect_refused", reason=str(rc))
            return
        client.subscribe([(self.topic("NCMD"), 0), (self.topic("DCMD", device=True), 0)])
        self.birth()

    def _on_disconnect(self, client: Any, *_args: Any) -> None:
        """The next session has the next bdSeq, and its will must say so (not after a clean stop: the
        next process takes the next one from the file, so NDEATH n is followed by NBIRTH n+1)."""
        if self._stop.is_set():
            return
        with self._lock:
            self._born = False
            self.bd_seq = (self.bd_seq + 1) % 256
            _save_bd_seq(self._bd_path, self.bd_seq)
        self._set_will(client)

    def birth(self) -> None:
        """NBIRTH then DBIRTH with every metric (seq restarts at 0 with each NBIRTH)."""
        with self._lock:
            self._seq = 0
            node = self._payload(timestamp=_now_ms(), seq=self._next_seq())
            node.metrics.add(name="bdSeq", datatype=DataType.UINT64, long_value=self.bd_seq)
            node.metrics.add(name=REBIRTH, datatype=DataType.BOOLEAN, boolean_value=False)
            self._client.publish(self.topic("NBIRTH"), node.SerializeToString(), qos=0)
            snap = self._state.snapshot()
            device = self._payload(timestamp=_now_ms(), seq=self._next_seq())
            for name, alias, kind, get in METRICS:
                self._add(device, kind, get(snap), name=name, alias=alias)
                self._last[name] = get(snap)
            self._client.publish(self.topic("DBIRTH", device=True), device.SerializeToString(), qos=0)
            self._born = True

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 256
        return seq

    def _add(self, payload: Any, kind: DataType, value: Any, **ident: Any) -> None:
        metric = payload.metrics.add(datatype=kind, timestamp=_now_ms(), **ident)
        setattr(metric, _VALUE_FIELD[kind], value)

    # -- data -------------------------------------------------------------------------
    def _publish_loop(self) -> None:
        changed = self._state.changed
        while not self._stop.is_set():
            changed.wait(1.0)
            changed.clear()
            if self._stop.is_set():
                return
            self.publish_changes()
            self._stop.wait(MIN_INTERVAL_S)

    def publish_changes(self) -> None:
        """DDATA with the metrics that changed since the last birth or data (named, and by alias)."""
        with self._lock:
            if not self._born:
                return
            snap = self._state.snapshot()
            data = self._payload(timestamp=_now_ms())
            for name, alias, kind, get in METRICS:
                value = get(snap)
                if self._last.get(name) != value:
                    self._last[name] = value
                    self._add(data, kind, value, alias=alias, name=name)
            if not data.metrics:
                return
            data.seq = self._next_seq()
            self._client.publish(self.topic("DDATA", device=True), data.SerializeToString(), qos=0)

    # -- commands ---------------------------------------------------------------------
    def _on_message(self, _client: Any, _u: Any, msg: Any) -> None:
        try:
            payload = self._payload.FromString(msg.payload)
        except Exception as exc:
            self._refuse("sparkplug_command_malformed", topic=msg.topic, error=str(exc)[:200])
            return
        for metric in payload.metrics:
            name = metric.name or next((n for n, a, *_ in METRICS if a == metric.alias), "")
            if msg.topic.endswith("/NCMD/" + self.node) and name == REBIRTH and metric.boolean_value:
                self.birth()
            elif name == "Trigger" and metric.boolean_value:
                self._fire("sparkplug")
            else:
                self._refuse("sparkplug_command_unknown", topic=msg.topic, metric=name[:100])

    def _refuse(self, event: str, **fields: Any) -> None:
        """Count a bad command; log the 1st, 2nd, 4th, 8th... so a flood cannot flood the journal."""
        self.malformed += 1
        if self.malformed & (self.malformed - 1) == 0:
            log.warning(event, refused=self.malformed, **fields)
