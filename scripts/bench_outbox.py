"""Outbox throughput and publish() latency against a real local mosquitto.

Prints three figures, each beside a baseline measured in the same run:

1. outbox write rate with the broker down (events/s committed to SQLite), baseline: one
   bare SQLite transaction inserting the same rows;
2. drain of a backlog to mosquitto at QoS 1 (events/s), baseline: bare paho publishing
   the same number of QoS 1 messages from memory with the same window, no outbox;
3. time publish() adds to the caller (p50/p99/max), broker up and down.

Usage: python scripts/bench_outbox.py [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config.schema import MqttConfig, OutboxConfig
from agent.protocol.topics import Topics
from agent.publish import Priority, Publisher
from agent.publish.mqtt import SEND_WINDOW
from tests.support.mosquitto import Mosquitto


def payload(i: int) -> bytes:
    return json.dumps({"id": f"bench-{i}", "ts": time.time(), "label": "scratch", "score": 0.93}).encode()


def make_publisher(port: int, db: Path, topics: Topics) -> Publisher:
    cfg = MqttConfig(port=port, reconnect_min_s=0.1, reconnect_max_s=0.5)
    out = OutboxConfig(path=str(db), max_bytes=1 << 30)
    return Publisher(
        cfg, out, topics=topics, client_id="bench", password=None, base_dir=db.parent, status_payload=dict
    )


def timed_publishes(pub: Publisher, topic: str, n: int, start: int = 0) -> list[float]:
    lat = []
    for i in range(start, start + n):
        body = payload(i)
        t0 = time.perf_counter()
        pub.publish(topic, body, qos=1, priority=Priority.EVENT)
        lat.append(time.perf_counter() - t0)
    return lat


def sqlite_baseline(db: Path, n: int, topic: str) -> float:
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ts REAL, topic TEXT, payload BLOB)")
    rows = [(time.time(), topic, payload(i)) for i in range(n)]
    t0 = time.perf_counter()
    con.execute("BEGIN")
    con.executemany("INSERT INTO t (ts, topic, payload) VALUES (?,?,?)", rows)
    con.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    con.close()
    return n / elapsed


def paho_baseline(port: int, n: int, topic: str) -> float:
    done = threading.Event()
    window = threading.Semaphore(SEND_WINDOW)  # packet ids are 16 bits: never 65k outstanding
    acked = [0]

    def on_publish(*_: object) -> None:
        window.release()
        acked[0] += 1
        if acked[0] == n:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(0)  # as the Publisher: the window is kept outside paho
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    bodies = [payload(i) for i in range(n)]
    t0 = time.perf_counter()
    for body in bodies:
        window.acquire()
        client.publish(topic, body, 1)
    done.wait(600)
    elapsed = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return n / elapsed


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1e3


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    n = args.events
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        topics = Topics("bench", "site", "line", "dev")
        broker = Mosquitto(tmp / "broker")  # configured, not started: the broker is down
        try:
            pub = make_publisher(broker.port, tmp / "outbox.db", topics)
            pub.start()
            t0 = time.perf_counter()
            lat_down = timed_publishes(pub, topics.event, n)
            assert pub.flush(600), "outbox writer did not keep up"
            write_rate = n / (time.perf_counter() - t0)
            base_write = sqlite_baseline(tmp / "baseline.db", n, topics.event)
            print(
                f"outbox write, broker down: {write_rate:,.0f} events/s "
                f"(bare SQLite transaction: {base_write:,.0f}/s, ratio {write_rate / base_write:.2f})"
            )

            broker.start()
            t0 = time.perf_counter()
            assert pub.drain(600), "backlog did not drain"
            drain_rate = n / (time.perf_counter() - t0)
            base_drain = paho_baseline(broker.port, n, topics.root + "/raw")
            print(
                f"drain {n:,} backlog at QoS 1: {drain_rate:,.0f} events/s "
                f"(bare paho from memory, window {SEND_WINDOW}: {base_drain:,.0f}/s, "
                f"ratio {drain_rate / base_drain:.2f})"
            )

            lat_up: list[float] = []
            for k in range(20):  # paced like a camera: bursts, not a flood
                lat_up += timed_publishes(pub, topics.event, 500, start=n + k * 500)
                time.sleep(0.05)
            pub.drain(120)
            pub.stop("bench done")
            for name, lat in (("broker down", lat_down), ("broker up", lat_up)):
                print(
                    f"publish() added latency, {name}: p50 {pct(lat, 0.5):.3f} ms, "
                    f"p99 {pct(lat, 0.99):.3f} ms, max {max(lat) * 1e3:.2f} ms, "
                    f"mean {statistics.fmean(lat) * 1e3:.3f} ms"
                )
        finally:
            broker.kill()


if __name__ == "__main__":
    main()
