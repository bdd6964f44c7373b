from __future__ import annotations

import socket
import sys
import urllib.request
from collections.abc import Callable

import pytest

from agent.errors import AgentError
from agent.health.prometheus import PrometheusExporter
from tests.support.paths import free_port
from tests.unit.health.conftest import Rig


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def test_the_endpoint_serves_the_latest_report_and_two_agents_do_not_collide(rig: Callable[..., Rig]) -> None:
    a, b = rig(sampler={"uncertain": 7}), rig()
    ea, eb = (
        PrometheusExporter(f"127.0.0.1:{free_port()}", "cam-a"),
        PrometheusExporter("127.0.0.1:0", "cam-b"),
    )
    try:
        assert scrape(ea.port).count("inspection_") == 0  # nothing before the first report
        a.line.counters.inspected = 42
        a.line.latency.add((1, 1, 1, 1, 1, 7.5))
        sum(i * i for i in range(2_000_000))  # CPU time on this thread that the report will show
        ea.update(a.reporter.report())
        eb.update(b.reporter.report())
        text = scrape(ea.port)
        assert 'inspection_frames_total{counter="inspected",device="cam-a"} 42.0' in text
        assert 'inspection_latency_ms{device="cam-a",quantile="0.99",stage="total"} 7.5' in text
        assert 'inspection_outbox_dropped{device="cam-a",priority="sample"} 4.0' in text
        assert 'inspection_sampler{device="cam-a",key="uncertain"} 7.0' in text
        assert 'inspection_model_info{device="cam-a",name="demo"' in text
        assert 'inspection_thread_cpu_percent{device="cam-a",thread="main"}' in text  # this test's thread
        assert "cam-b" not in text and "cam-a" not in scrape(eb.port)
    finally:
        ea.close()
        eb.close()


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(AgentError, match=f"cannot listen on 127.0.0.1:{port}"):
            PrometheusExporter(f"127.0.0.1:{port}", "cam")


def test_without_prometheus_client_the_error_names_the_metrics_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(AgentError, match=r"edge-inspection-agent\[metrics\]"):
        PrometheusExporter("127.0.0.1:0", "cam")


def test_the_reporter_starts_and_stops_its_endpoint(rig: Callable[..., Rig]) -> None:
    port = free_port()
    r = rig(prometheus=f"127.0.0.1:{port}")
    r.reporter.start()
    r.reporter.report()
    assert "inspection_uptime_seconds" in scrape(port)
    r.reporter.stop("test")
    with pytest.raises(OSError):
        scrape(port)


def test_a_bad_address_is_a_config_error(rig: Callable[..., Rig]) -> None:
    from agent.errors import ConfigError

    with pytest.raises(ConfigError, match=r"health.prometheus: 'localhost' is not HOST:PORT"):
        rig(prometheus="localhost")
