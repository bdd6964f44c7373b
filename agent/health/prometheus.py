"""Optional Prometheus endpoint with the figures of the latest health report.

``prometheus_client`` is imported here only (the ``metrics`` extra). Each exporter
has its own registry, not the library's global one, so two agents in one process
(tests) never collide, and serves what the last report said: a scrape costs the
pipeline nothing and shows exactly what ``.../health`` showed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from agent.errors import AgentError

_NS = "inspection"


class PrometheusExporter:
    def __init__(self, address: str, device: str) -> None:
        try:
            import prometheus_client
        except ImportError as exc:
            raise AgentError(
                "health.prometheus needs prometheus_client: "
                "pip install 'edge-inspection-agent[metrics]' (or turn health.prometheus off)"
            ) from exc
        host, _, port = address.rpartition(":")
        self._device = device
        self._lock = threading.Lock()
        self._doc: dict[str, Any] | None = None
        self.registry = prometheus_client.CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        try:
            self._server, self._thread = prometheus_client.start_http_server(
                int(port), host.strip("[]"), registry=self.registry
            )
        except OSError as exc:
            raise AgentError(f"health.prometheus: cannot listen on {address}: {exc.strerror or exc}") from exc
        self.port = int(self._server.server_address[1])

    def update(self, doc: dict[str, Any]) -> None:
        with self._lock:
            self._doc = doc

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def collect(self) -> Iterator[Any]:
        """Called by the registry on each scrape (the HTTP server's thread)."""
        with self._lock:
            doc = self._doc
        if doc is None:
            return
        yield from _families(doc, self._device)


def _families(doc: dict[str, Any], device: str) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

    def gauge(name: str, doc_: str, labels: tuple[str, ...] = ()) -> Any:
        return GaugeMetricFamily(f"{_NS}_{name}", doc_, labels=("device", *labels))

    fps = gauge("fps", "Frames per second over the last health interval", ("stage",))
    for stage, value in doc["fps"].items():
        fps.add_metric([device, stage], value)
    frames = CounterMetricFamily(
        f"{_NS}_frames", "Pipeline counters since start", labels=("device", "counter")
    )
    for name, value in doc["counters"].items():
        frames.add_metric([device, name], value)
    latency = gauge(
        "latency_ms", "Per-stage latency percentiles over the last interval", ("stage", "quantile")
    )
    for stage, pct in doc["latency_ms"].items():
        for q, value in pct.items():
            latency.add_metric([device, stage, f"0.{q[1:]}"], value)
    yield from (fps, frames, latency)
    yield from _outbox(doc["outbox"], device, gauge)
    yield from _scalars(doc, device, gauge)
    model = doc.get("model") or {}
    info = InfoMetricFamily(f"{_NS}_model", "The model in use", labels=("device",))
    info.add_metric([device], {k: str(v) for k, v in model.items() if v is not None})
    yield info


def _outbox(outbox: dict[str, Any], device: str, gauge: Any) -> Iterator[Any]:
    for key in ("depth", "bytes", "inflight"):
        g = gauge(f"outbox_{key}", f"Outbox {key} now")
        g.add_metric([device], outbox[key])
        yield g
    dropped = gauge("outbox_dropped", "Messages the outbox dropped, by priority", ("priority",))
    for priority, value in outbox["dropped"].items():
        dropped.add_metric([device, priority], value)
    yield dropped


def _scalars(doc: dict[str, Any], device: str, gauge: Any) -> Iterator[Any]:
    sys_ = doc["system"]
    drift = doc.get("drift") or {}
    values = {
        "uptime_seconds": doc["uptime_s"],
        "up": 1.0 if doc["state"] == "ok" else 0.0,
        "camera_online": 1.0 if doc.get("camera") == "online" else 0.0,
        "cpu_percent": sys_["cpu_percent"],
        "rss_bytes": sys_["rss_bytes"],
        "cpu_temperature_celsius": sys_["cpu_temp_c"],
        "disk_free_bytes": sys_["disk_free_bytes"],
        "drift_active": 1.0 if drift.get("active") else 0.0,
    }
    for name, value in values.items():
        if value is None:
            continue
        g = gauge(name, name.replace("_", " "))
        g.add_metric([device], float(value))
        yield g
    threads = gauge("thread_cpu_percent", "The busiest threads' CPU, percent of one core", ("thread",))
    for thread, value in (sys_.get("threads_percent") or {}).items():
        threads.add_metric([device, thread], value)
    yield threads
    sampler = gauge("sampler", "Sampler figures (counts by policy)", ("key",))
    for key, value in _flatten(doc.get("sampler") or {}):
        sampler.add_metric([device, key], value)
    yield sampler


def _flatten(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric leaves of a nested dict as ``("a.b", value)``; other leaves are left out."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield f"{prefix}{key}", float(value)
