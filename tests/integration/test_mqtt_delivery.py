"""QoS 1 delivery through a real mosquitto: outages, SIGKILL, bounds, status, commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config.schema import MqttConfig, OutboxConfig
from agent.errors import PublishError
from agent.protocol.topics import Topics
from agent.publish import CommandRouter, Priority, Publisher
from tests.support.mosquitto import Mosquitto, Subscriber, env_without_proxies
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

CHILD = """
import json, sys, time
from pathlib import Path
import structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
from agent.config.schema import MqttConfig, OutboxConfig
from agent.publish import Priority, Publisher
from agent.protocol.topics import Topics
port, db, prefix, start, count, mode = sys.argv[1:]
start, count = int(start), int(count)
topics = Topics(prefix, "s", "l", "d")
cfg = MqttConfig(port=int(port), reconnect_min_s=0.1, reconnect_max_s=0.5)
pub = Publisher(cfg, OutboxConfig(path=db), topics=topics, client_id="child", password=None,
                base_dir=Path(db).parent, status_payload=dict)
pub.start()
for i in range(start, start + count):
    pub.publish(topics.defect, json.dumps({"id": i}).encode(), qos=1, priority=Priority.DEFECT)
    if (i + 1) % 100 == 0 and pub.flush(30):
        print("committed", i, flush=True)
if mode == "drain":
    print("drained", pub.drain(60), flush=True)
    pub.stop("done")
else:
    pub.flush(30)
    print("committed", start + count - 1, flush=True)
    time.sleep(600)
"""


def ids(messages: list[Any]) -> list[int]:
    return [json.loads(payload)["id"] for _, payload, _ in messages]


def defects(messages: list[Any], topic: str) -> list[Any]:
    return [m for m in list(messages) if m[0] == topic]


def first_occurrences(values: list[int]) -> list[int]:
    seen: set[int] = set()
    out = []
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


@pytest.fixture
def make_publisher(tmp_path: Path, unique_prefix: str) -> Iterator[Callable[..., Publisher]]:
    made: list[Publisher] = []

    def make(port: int, *, outbox: OutboxConfig | None = None, **mqtt: Any) -> Publisher:
        cfg = MqttConfig(port=port, reconnect_min_s=0.1, reconnect_max_s=0.5, **mqtt)
        pub = Publisher(
            cfg,
            outbox or OutboxConfig(path="outbox.db"),
            topics=Topics(unique_prefix, "s", "l", "d"),
            client_id=f"{unique_prefix}-d",
            password=None,
            base_dir=tmp_path,
            status_payload=lambda: {"agent_version": "0.1.0", "model": {"name": "m", "version": "1"}},
        )
        made.append(pub)
        return pub

    yield make
    for pub in made:
        pub.stop("test over", timeout=2)


def test_qos1_messages_arrive_in_order_after_a_retained_online_status(
    mosquitto: Mosquitto, make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    topics = Topics(unique_prefix, "s", "l", "d")
    with Subscriber(mosquitto.port, f"{topics.root}/#") as sub:
        pub = make_publisher(mosquitto.port)
        pub.start()
        for i in range(500):
            pub.publish(topics.defect, json.dumps({"id": i}).encode(), qos=1, priority=Priority.DEFECT)
        assert pub.drain(30)
        got = sub.wait_for(501, 10)
        status = json.loads(got[0][1])
        assert got[0][0] == topics.status and status["state"] == "online"
        assert status["model"] == {"name": "m", "version": "1"} and status["device"] == "d"
        assert ids([m for m in got if m[0] == topics.defect]) == list(range(500))
        stats = pub.stats()
        assert stats["connected"] and stats["sent"] == 500 and stats["outbox_depth"] == 0


def test_qos0_results_amid_a_defect_storm_arrive_complete_and_in_order(
    mosquitto: Mosquitto, make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    """A result (QoS 0) published while the outbox gathers a batch of defects rides along with
    that batch; the ones after it must not overtake it, and none may be lost."""
    topics = Topics(unique_prefix, "s", "l", "d")
    with Subscriber(mosquitto.port, f"{topics.root}/#") as sub:
        pub = make_publisher(mosquitto.port)
        pub.start()
        assert wait_until(lambda: pub.connected)
        for i in range(600):
            body = json.dumps({"id": i}).encode()
            pub.publish(topics.result, body, qos=0, priority=Priority.RESULT)
            if i % 3 == 0:  # a defect every third frame: the outbox keeps gathering batches
                pub.publish(topics.defect, body, qos=1, priority=Priority.DEFECT)
            if i % 20 == 0:
                time.sleep(0.004)
        assert pub.drain(30)
        assert wait_until(lambda: len(defects(sub.messages, topics.result)) >= 600, 10)
        assert wait_until(lambda: len(defects(sub.messages, topics.defect)) >= 200, 10)
        assert ids(defects(sub.messages, topics.result)) == list(range(600))
        assert ids(defects(sub.messages, topics.defect)) == list(range(0, 600, 3))
        stats = pub.stats()
        assert stats["qos0_sent"] == 600 and stats["qos0_dropped"] == 0 and stats["sent"] == 200


@pytest.mark.slow
def test_broker_outage_loses_nothing_and_keeps_order(
    mosquitto_factory: Callable[..., Mosquitto], make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    broker = mosquitto_factory(persistence=True)
    topic = Topics(unique_prefix, "s", "l", "d").defect
    with Subscriber(broker.port, topic, persistent=True) as sub:
        pub = make_publisher(broker.port)
        pub.start()
        assert wait_until(lambda: pub.connected)
        for i in range(3000):
            if i == 1000:
                broker.stop()
            if i == 2000:
                assert not pub.connected
                broker.start()
            pub.publish(topic, json.dumps({"id": i}).encode(), qos=1, priority=Priority.DEFECT)
            if i % 50 == 0:
                time.sleep(0.005)
        assert pub.drain(60), pub.stats()
        wait_until(lambda: len(set(ids(sub.messages))) >= 3000, 20)  # duplicates are allowed
        received = ids(sub.messages)
    assert set(received) == set(range(3000)), "a message is missing"
    assert first_occurrences(received) == list(range(3000)), "order broken"
    assert pub.stats()["reconnects"] >= 1


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_drains_the_outbox(
    mosquitto: Mosquitto, tmp_path: Path, unique_prefix: str
) -> None:
    topics = Topics(unique_prefix, "s", "l", "d")
    db = str(tmp_path / "child" / "outbox.db")
    args = [sys.executable, "-c", CHILD, str(mosquitto.port), db, unique_prefix]
    env = env_without_proxies()
    with Subscriber(mosquitto.port, [topics.defect, topics.status]) as sub:
        child = subprocess.Popen([*args, "0", "5000", "hang"], stdout=subprocess.PIPE, text=True, env=env)
        committed = -1
        try:
            assert child.stdout is not None
            for line in child.stdout:
                committed = int(line.split()[1])
                if committed >= 1999:
                    os.kill(child.pid, signal.SIGKILL)
                    break
        finally:
            child.kill()
            child.wait(10)
            if child.stdout is not None:
                child.stdout.close()
        assert committed >= 1999
        will = sub.wait_for(2, 10, where=lambda m: m[0] == topics.status)
        assert json.loads(will[-1][1]) == {"state": "offline", "reason": "connection lost", "device": "d"}

        again = subprocess.run(
            [*args, "0", "0", "drain"], check=False, capture_output=True, text=True, env=env, timeout=90
        )
        assert "drained True" in again.stdout, again.stderr[-2000:]
        wait_until(lambda: set(range(committed + 1)) <= set(ids(defects(sub.messages, topics.defect))), 20)
        got = ids(defects(sub.messages, topics.defect))
    assert set(range(committed + 1)) <= set(got), "a committed message was lost"
    assert max(got) < 5000
    assert first_occurrences(got) == sorted(set(got))


def test_full_outbox_drops_by_priority_counts_it_and_keeps_defects(
    mosquitto_factory: Callable[..., Mosquitto], make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    broker = mosquitto_factory(start=False)
    topics = Topics(unique_prefix, "s", "l", "d")
    pub = make_publisher(broker.port, outbox=OutboxConfig(path="small.db", max_bytes=65536))
    pub.start()
    body = b"x" * 900
    order = [(Priority.SAMPLE, topics.sample, 60), (Priority.RESULT, topics.result, 60)]
    order += [(Priority.EVENT, topics.event, 30), (Priority.DEFECT, topics.defect, 40)]
    for priority, topic, n in order:
        for i in range(n):
            payload = json.dumps({"id": i, "pad": body.decode()}).encode()
            pub.publish(topic, payload, qos=1, priority=priority)
    assert pub.flush(10)
    stats = pub.stats()
    assert stats["dropped"]["sample"] == 60 and stats["dropped"]["result"] == 60
    assert stats["dropped"]["defect"] == 0 and 0 < stats["dropped"]["event"] < 30
    assert stats["outbox_bytes"] <= 65536
    broker.start()
    with Subscriber(broker.port, topics.defect) as sub:
        assert pub.drain(30)
    # The subscriber may have joined late; what matters is that nothing of the defects was dropped.
    assert pub.stats()["sent"] == 40 + 30 - stats["dropped"]["event"]
    assert sub is not None


def test_qos0_is_dropped_and_counted_while_disconnected(
    mosquitto_factory: Callable[..., Mosquitto], make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    broker = mosquitto_factory(start=False)
    topics = Topics(unique_prefix, "s", "l", "d")
    pub = make_publisher(broker.port)
    pub.start()
    for i in range(5):
        pub.publish(topics.result, b'{"id": %d}' % i, qos=0, priority=Priority.RESULT)
    assert pub.stats()["qos0_dropped"] == 5
    broker.start()
    assert wait_until(lambda: pub.connected)
    with Subscriber(broker.port, topics.result) as sub:
        pub.publish(
            topics.result, b'{"id": 9}', qos=0, priority=Priority.RESULT, content_type="application/json"
        )
        (msg,) = sub.wait_for(1, 10)
    assert msg[1] == b'{"id": 9}' and msg[2].ContentType == "application/json"
    assert pub.stats()["qos0_sent"] == 1


def test_bad_publishes_raise_a_clear_publish_error(
    mosquitto: Mosquitto, make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    pub = make_publisher(mosquitto.port, max_packet_bytes=2048)
    pub.start()
    root = Topics(unique_prefix, "s", "l", "d").root
    with pytest.raises(PublishError, match="max_packet_bytes=2048"):
        pub.publish(f"{root}/sample", b"x" * 2049, qos=1, priority=Priority.SAMPLE)
    with pytest.raises(PublishError, match="wildcard"):
        pub.publish(f"{root}/+", b"{}", qos=1, priority=Priority.EVENT)
    with pytest.raises(PublishError, match="qos must be 0 or 1"):
        pub.publish(f"{root}/event", b"{}", qos=2, priority=Priority.EVENT)
    pub.stop("bye")
    with pytest.raises(PublishError, match="stopped"):
        pub.publish(f"{root}/event", b"{}", qos=1, priority=Priority.EVENT)


def test_stop_leaves_a_retained_offline_status_with_its_reason(
    mosquitto: Mosquitto, make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    topics = Topics(unique_prefix, "s", "l", "d")
    pub = make_publisher(mosquitto.port)
    pub.start()
    assert wait_until(lambda: pub.connected)
    pub.stop("shutdown: SIGTERM")
    with Subscriber(mosquitto.port, topics.status) as late:  # retained: a late subscriber sees it
        (msg,) = late.wait_for(1, 10)
    doc = json.loads(msg[1])
    assert doc["state"] == "offline" and doc["reason"] == "shutdown: SIGTERM"


def retained_status(port: int, topics: Topics) -> dict[str, Any]:
    with Subscriber(port, topics.status) as late:
        (msg,) = late.wait_for(1, 10)
    return dict(json.loads(msg[1]))


def test_a_with_block_starts_the_publisher_and_stops_it_with_the_owners_reason(
    mosquitto: Mosquitto, make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    topics = Topics(unique_prefix, "s", "l", "d")
    with make_publisher(mosquitto.port) as pub:
        assert wait_until(lambda: pub.connected), "entering the block starts it"
        assert retained_status(mosquitto.port, topics)["state"] == "online"
        pub.stop_reason = "shutdown: SIGTERM"
    assert not pub.connected
    doc = retained_status(mosquitto.port, topics)
    assert doc["state"] == "offline" and doc["reason"] == "shutdown: SIGTERM"
    with pytest.raises(PublishError, match="stopped"):
        pub.publish(topics.event, b"{}", qos=1, priority=Priority.EVENT)


def test_an_exception_leaving_the_block_says_offline_with_the_error_and_propagates(
    mosquitto: Mosquitto, make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    topics = Topics(unique_prefix, "s", "l", "d")
    with pytest.raises(ValueError, match="tick broke"), make_publisher(mosquitto.port) as pub:
        assert wait_until(lambda: pub.connected)
        raise ValueError("tick broke\nsecond line")
    doc = retained_status(mosquitto.port, topics)
    assert doc["state"] == "offline" and doc["reason"] == "error: ValueError: tick broke"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_commands_reply_on_the_right_topic(
    mosquitto: Mosquitto, make_publisher: Callable[..., Publisher], unique_prefix: str, protocol: str
) -> None:
    topics = Topics(unique_prefix, "s", "l", "d")
    pub = make_publisher(mosquitto.port, protocol=protocol)
    pub.start()
    pub.on_command(CommandRouter())
    assert wait_until(lambda: pub.connected)
    time.sleep(0.3)  # the SUBACK
    with Subscriber(mosquitto.port, [f"{topics.root}/cmd/+/reply", f"{unique_prefix}/ops/#"]) as ops:
        ops.publish(
            topics.cmd("ping"), b'{"echo": "a"}', response_topic=f"{unique_prefix}/ops/r1", correlation=b"c1"
        )
        ops.publish(topics.cmd("nope"), b"{}")
        ops.publish(topics.cmd("ping"), b"[not json")
        replies = ops.wait_for(3, 10)
    by_topic = {topic: (json.loads(body), props) for topic, body, props in replies}
    if protocol == "5":
        body, props = by_topic[f"{unique_prefix}/ops/r1"]
        assert body["ok"] is True and body["result"]["echo"] == "a" and props.CorrelationData == b"c1"
    else:
        assert f"{unique_prefix}/ops/r1" not in by_topic
    errors = [b for t, (b, _) in by_topic.items() if t.endswith("/reply")]
    assert any(b["command"] == "nope" and "unknown command" in b["error"] for b in errors)
    assert any(b["command"] == "ping" and "malformed JSON" in b["error"] for b in errors)
