"""A poison message is quarantined alone; a writer failure not about one message stops the collector."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from agent.collector.config import load_collector_config
from agent.collector.index import Index
from agent.collector.ingest import Ingest
from agent.collector.messages import Incoming, Parser
from agent.collector.service import Collector
from agent.collector.storage import make_storage
from agent.errors import AgentError
from agent.protocol.wire import frame
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.unit.collector.conftest import Parts, write_config
from tests.unit.collector.samples import defect_event, jpeg, meta, topic, v5


def _rows(parts: Parts, table: str) -> int:
    return int(parts.index.query(f"SELECT count(*) FROM {table}")[0][0])


def _event(doc: dict[str, object], mid: int = 1) -> Incoming:
    return Incoming(topic(kind="defect"), json.dumps(doc).encode(), "application/json", None, mid, 1)


@pytest.mark.parametrize(
    "poison",
    [
        {"ts": 10**20},  # passed the schema once; OverflowError in the SQLite insert
        {"frame": 2**64},
        {"label": "\ud800"},  # a lone surrogate: valid JSON, cannot be bound as UTF-8 text
    ],
)
def test_a_poison_sample_is_quarantined_and_its_batch_neighbours_stored(
    parts: Parts, poison: dict[str, object]
) -> None:
    good, bad = jpeg(seed=1), jpeg(seed=2)
    batch = [v5(meta(good), good, mid=1), v5(meta(bad, **poison), bad, mid=2), v5(meta(good), good, mid=3)]
    parts.ingest.process(batch)
    assert _rows(parts, "samples") == 2
    assert _rows(parts, "quarantine") == 1
    parts.ingest.process([v5(meta(good), good)])  # and the next batch is stored too
    assert _rows(parts, "samples") == 3


@pytest.mark.parametrize("poison", [{"ts": 10**20}, {"label": "\ud800"}, {"score": float("nan")}])
def test_a_poison_defect_event_is_quarantined_alone(parts: Parts, poison: dict[str, object]) -> None:
    parts.ingest.process([_event(defect_event(), 1), _event({**defect_event(), **poison}, 2)])
    assert _rows(parts, "events") == 1
    assert _rows(parts, "quarantine") == 1


def test_non_finite_numbers_are_refused(parts: Parts) -> None:
    data = jpeg()
    text = (
        json.dumps(meta(data)).replace('"ok": 0.55', '"ok": NaN').replace('"total": 12.5', '"total": 1e999')
    )
    parts.ingest.process([Incoming(topic(), data, "image/jpeg", text, 1, 1)])
    assert _rows(parts, "samples") == 0
    assert "not JSON" in parts.index.query("SELECT reason FROM quarantine")[0][0]


@pytest.mark.integration
def test_a_writer_failure_ends_run_with_an_error(
    tmp_path: Path, mosquitto: Mosquitto, unique_prefix: str
) -> None:
    """The index is unusable (closed under the writer): run() must end, not ping the watchdog forever."""
    broker = f"broker: {{port: {mosquitto.port}, client_id: poison-writer}}\n"
    broker += f"subscribe: {{prefix: {unique_prefix}}}\n"
    cfg = load_collector_config(write_config(tmp_path, broker))
    storage = make_storage("local", cfg.root)
    index = Index(cfg.index_path)
    collector = Collector(cfg, Ingest(Parser(cfg), storage, index))
    outcome: list[BaseException | int] = []

    def run() -> None:
        try:
            outcome.append(collector.run())
        except BaseException as exc:  # the test reports whatever ended run()
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert collector.connected.wait(10)
    index.close()
    with Subscriber(mosquitto.port, f"{unique_prefix}/none") as pub:
        data = jpeg()
        pub.publish(topic(prefix=unique_prefix), frame(json.dumps(meta(data)).encode(), data))
    thread.join(15)
    assert not thread.is_alive(), "run() kept going with a dead writer"
    assert len(outcome) == 1 and isinstance(outcome[0], AgentError), outcome
    storage.close()
