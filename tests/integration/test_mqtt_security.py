"""TLS, passwords and the ACL from docs/security.md, against a real mosquitto."""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent.collector.config import load_collector_config
from agent.collector.index import Index
from agent.collector.ingest import Ingest
from agent.collector.messages import Parser
from agent.collector.service import Collector
from agent.collector.storage import make_storage
from agent.config.schema import MqttConfig, OutboxConfig, TlsConfig
from agent.config.secret import Secret
from agent.errors import ConfigError, PublishError
from agent.mqtt import ClientSpec, probe
from agent.protocol.topics import Topics
from agent.protocol.wire import frame
from agent.publish import CommandRouter, Priority, Publisher
from tests.support.certs import TlsFiles, make_ca
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.paths import REPO
from tests.support.wait import wait_until
from tests.unit.collector import samples

pytestmark = pytest.mark.integration

PASSWORDS = {"d1": "pw-d1", "d2": "pw-d2", "collector": "pw-c", "operator": "pw-o"}


def documented_acl(prefix: str) -> str:
    """The ACL block of docs/security.md, with this test's prefix."""
    text = (REPO / "docs" / "security.md").read_text()
    block = re.search(r"```acl\n(.*?)```", text, re.S)
    assert block, "docs/security.md lost its ```acl block"
    return block.group(1).replace("inspection/", f"{prefix}/")


@pytest.fixture
def make_publisher(tmp_path: Path, unique_prefix: str) -> Iterator[Callable[..., Publisher]]:
    made: list[Publisher] = []

    def make(port: int, device: str = "d1", password: str | None = None, **mqtt: Any) -> Publisher:
        cfg = MqttConfig(port=port, reconnect_min_s=0.1, reconnect_max_s=0.4, **mqtt)
        pub = Publisher(
            cfg,
            OutboxConfig(path=f"{device}-{len(made)}.db"),
            topics=Topics(unique_prefix, "s", "l", device),
            client_id=f"{unique_prefix}-{device}",
            password=Secret(password) if password is not None else None,
            base_dir=tmp_path,
            status_payload=dict,
        )
        made.append(pub)
        return pub

    yield make
    for pub in made:
        pub.stop("test over", timeout=2)


def client_tls(pki: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return ctx


def test_tls_with_a_client_certificate_and_hostname_check_delivers(
    mosquitto_factory: Callable[..., Mosquitto],
    broker_pki: TlsFiles,
    make_publisher: Callable[..., Publisher],
    unique_prefix: str,
) -> None:
    broker = mosquitto_factory(tls=broker_pki, require_certificate=True)
    tls = TlsConfig(
        ca_file=str(broker_pki.ca), cert_file=str(broker_pki.client_cert), key_file=str(broker_pki.client_key)
    )
    topic = Topics(unique_prefix, "s", "l", "d1").defect
    with Subscriber(broker.port, topic, tls=client_tls(broker_pki)) as sub:
        pub = make_publisher(broker.port, tls=tls)
        pub.start()
        pub.publish(topic, b'{"id": 1}', qos=1, priority=Priority.DEFECT)
        assert pub.drain(15), pub.stats()
        assert sub.wait_for(1, 10)[0][1] == b'{"id": 1}'


def test_a_broker_signed_by_another_ca_is_refused_and_retried(
    mosquitto_factory: Callable[..., Mosquitto],
    broker_pki: TlsFiles,
    tmp_path: Path,
    make_publisher: Callable[..., Publisher],
    unique_prefix: str,
) -> None:
    broker = mosquitto_factory(tls=broker_pki)
    other_ca, _, _ = make_ca(tmp_path / "other", "other-ca")
    pub = make_publisher(broker.port, tls=TlsConfig(ca_file=str(other_ca)))
    pub.start()
    assert wait_until(lambda: "certificate verify failed" in (pub.stats()["last_error"] or ""))
    pub.publish(Topics(unique_prefix, "s", "l", "d1").defect, b'{"id": 1}', qos=1, priority=Priority.DEFECT)
    assert pub.flush(5) and pub.stats()["outbox_depth"] == 1 and not pub.connected
    attempts = broker.log_text().count("New connection from")
    assert wait_until(lambda: broker.log_text().count("New connection from") > attempts, 5), "no retry"


def test_hostname_mismatch_fails_unless_explicitly_skipped(
    mosquitto_factory: Callable[..., Mosquitto],
    broker_pki: TlsFiles,
    make_publisher: Callable[..., Publisher],
) -> None:
    broker = mosquitto_factory(tls=broker_pki)
    # The broker certificate names localhost and 127.0.0.1; "127.1" reaches the same address by another name.
    strict = make_publisher(broker.port, host="127.1", tls=TlsConfig(ca_file=str(broker_pki.ca)))
    strict.start()
    assert wait_until(lambda: "certificate verify failed" in (strict.stats()["last_error"] or ""))
    with capture_logs() as logs:
        lax = make_publisher(
            broker.port, host="127.1", tls=TlsConfig(ca_file=str(broker_pki.ca), insecure_skip_verify=True)
        )
    assert any(e["log_level"] == "warning" and e["event"] == "mqtt_tls_hostname_check_off" for e in logs)
    lax.start()
    assert wait_until(lambda: lax.connected)


def test_an_unreadable_ca_file_is_a_config_error(
    tmp_path: Path, make_publisher: Callable[..., Publisher]
) -> None:
    with pytest.raises(ConfigError, match=r"mqtt.tls.ca_file: cannot load"):
        make_publisher(1883, tls=TlsConfig(ca_file=str(tmp_path / "missing.pem")))


def test_a_wrong_password_is_reported_once_retried_and_never_logged(
    mosquitto_factory: Callable[..., Mosquitto], make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    broker = mosquitto_factory(passwords=PASSWORDS)
    with capture_logs() as logs:
        pub = make_publisher(broker.port, username="d1", password="not-the-password")
        pub.start()
        assert wait_until(lambda: "refused the connection" in (pub.stats()["last_error"] or ""))
        pub.publish(Topics(unique_prefix, "s", "l", "d1").event, b'{"id": 1}', qos=1, priority=Priority.EVENT)
        assert pub.flush(5)
        assert wait_until(lambda: broker.log_text().count("not authorised") >= 3, 10), "no retry"
    assert not pub.connected and pub.stats()["outbox_depth"] == 1
    # mosquitto 2.0 answers a bad password with "Not authorized" (135); others say 134.
    assert re.search(r"code 13[45]\)", pub.stats()["last_error"])
    failures = [e for e in logs if e["event"] == "mqtt_connect_failed"]
    assert len(failures) == 1, "one line per distinct cause, not one per retry"
    assert "not-the-password" not in repr(logs)


def acl_broker(factory: Callable[..., Mosquitto], prefix: str) -> Mosquitto:
    return factory(passwords=PASSWORDS, acl=documented_acl(prefix))


def test_acl_a_device_publishes_only_under_its_own_root(
    mosquitto_factory: Callable[..., Mosquitto], make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    broker = acl_broker(mosquitto_factory, unique_prefix)
    own, other = Topics(unique_prefix, "s", "l", "d1"), Topics(unique_prefix, "s", "l", "d2")
    with Subscriber(
        broker.port, f"{unique_prefix}/+/+/+/defect", username="collector", password="pw-c"
    ) as sub:
        pub = make_publisher(broker.port, username="d1", password="pw-d1")
        pub.start()
        with capture_logs() as logs:
            pub.publish(other.defect, b'{"id": "forged"}', qos=1, priority=Priority.DEFECT)
            pub.publish(own.defect, b'{"id": "mine"}', qos=1, priority=Priority.DEFECT)
            assert wait_until(lambda: pub.stats()["rejected"] == 1 and pub.stats()["sent"] == 1)
        got = sub.wait_for(1, 5)
        time.sleep(0.3)
    assert [m[1] for m in sub.messages] == [b'{"id": "mine"}'] and got
    refused = [e for e in logs if e["event"] == "mqtt_message_refused"]
    assert refused and refused[0]["topic"] == other.defect and "135" in refused[0]["reason"]
    assert pub.stats()["outbox_depth"] == 1  # parked: offered again after a restart only
    assert pub.stats()["rejected"] == 1, "a refused message must not be resent on every reconnect"


def test_acl_commands_reach_only_their_device_and_only_from_operators(
    mosquitto_factory: Callable[..., Mosquitto], make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    broker = acl_broker(mosquitto_factory, unique_prefix)
    d1 = Topics(unique_prefix, "s", "l", "d1")
    pub = make_publisher(broker.port, username="d1", password="pw-d1")
    pub.start()
    pub.on_command(CommandRouter())
    assert wait_until(lambda: pub.connected)
    time.sleep(0.3)
    reply_filter = f"{d1.root}/cmd/+/reply"
    with Subscriber(broker.port, reply_filter, username="operator", password="pw-o") as operator:
        with Subscriber(broker.port, reply_filter, username="collector", password="pw-c") as collector:
            collector.publish(d1.cmd("ping"), b'{"echo": "from collector"}')  # denied by the ACL
            operator.publish(
                d1.cmd("ping"), b'{"echo": "from operator"}', response_topic=f"{d1.cmd('ping')}/reply"
            )
            (reply,) = operator.wait_for(1, 10)
            time.sleep(0.3)
        body = json.loads(reply[1])
        assert body["ok"] and body["result"]["echo"] == "from operator"
        assert len(operator.messages) == 1, "the collector's command must not have run"
    d2_cmds = f"{unique_prefix}/s/l/d2/cmd/+"
    with Subscriber(broker.port, d2_cmds, username="d1", password="pw-d1") as snoop:
        with Subscriber(broker.port, d2_cmds, username="d2", password="pw-d2") as d2:
            with Subscriber(broker.port, "unused/x", username="operator", password="pw-o") as operator:
                operator.publish(f"{unique_prefix}/s/l/d2/cmd/ping", b"{}")
            assert d2.wait_for(1, 5)
            time.sleep(0.3)
        # mosquitto grants the subscription but never delivers what the ACL does not let d1 read.
        assert snoop.messages == [], "d1 must not read d2's commands"


def test_acl_collector_reads_samples_and_defects_but_not_results(
    mosquitto_factory: Callable[..., Mosquitto], make_publisher: Callable[..., Publisher], unique_prefix: str
) -> None:
    broker = acl_broker(mosquitto_factory, unique_prefix)
    d1 = Topics(unique_prefix, "s", "l", "d1")
    filters = [f"{unique_prefix}/+/+/+/{kind}" for kind in ("sample", "defect", "result")]
    with Subscriber(broker.port, filters, username="collector", password="pw-c") as collector:
        pub = make_publisher(broker.port, username="d1", password="pw-d1")
        pub.start()
        for topic, pri in (
            (d1.result, Priority.RESULT),
            (d1.sample, Priority.SAMPLE),
            (d1.defect, Priority.DEFECT),
        ):
            pub.publish(topic, b'{"id": 1}', qos=1, priority=pri)
        assert pub.drain(10)
        collector.wait_for(2, 5)
        time.sleep(0.3)
    assert sorted(m[0] for m in collector.messages) == sorted([d1.defect, d1.sample])


def collector_over_tls(tmp_path: Path, port: int, prefix: str, tls: str) -> Collector:
    """An in-process collector (real storage, index and paho client) with ``broker.tls`` = ``tls``."""
    path = tmp_path / "collector.yaml"
    path.write_text(
        f"broker: {{host: 127.0.0.1, port: {port}, client_id: {prefix}-c, tls: {tls},"
        " reconnect_min_s: 0.1, reconnect_max_s: 0.4}\n"
        f"subscribe: {{prefix: {prefix}, shared_group: null}}\n"
        f"storage: {{root: {tmp_path / 'store'}}}\n"
    )
    cfg = load_collector_config(path)
    ingest = Ingest(Parser(cfg), make_storage("local", cfg.root), Index(cfg.index_path))
    return Collector(cfg, ingest)


def test_the_collector_stores_a_sample_over_tls_with_a_client_certificate(
    mosquitto_factory: Callable[..., Mosquitto], broker_pki: TlsFiles, tmp_path: Path, unique_prefix: str
) -> None:
    broker = mosquitto_factory(tls=broker_pki, require_certificate=True)
    pki = broker_pki
    tls = f"{{ca_file: {pki.ca}, cert_file: {pki.client_cert}, key_file: {pki.client_key}}}"
    collector = collector_over_tls(tmp_path, broker.port, unique_prefix, tls)
    collector.start()
    try:
        assert collector.connected.wait(15), broker.log_tail()
        data = samples.jpeg()
        doc = samples.meta(data)
        topic = samples.topic(prefix=unique_prefix)
        with Subscriber(broker.port, "unused/x", tls=client_tls(broker_pki)) as device:
            device.publish(topic, frame(json.dumps(doc).encode(), data))
        assert wait_until(lambda: collector.ingest.counts["stored"] == 1), collector.stats()
    finally:
        collector.close(timeout=5)
        collector.ingest.index.close()
    assert collector.ingest.counts["quarantined"] == 0


def test_the_collector_reports_a_broker_signed_by_another_ca(
    mosquitto_factory: Callable[..., Mosquitto], broker_pki: TlsFiles, tmp_path: Path, unique_prefix: str
) -> None:
    broker = mosquitto_factory(tls=broker_pki)
    other_ca, _, _ = make_ca(tmp_path / "other", "other-ca")
    collector = collector_over_tls(tmp_path, broker.port, unique_prefix, f"{{ca_file: {other_ca}}}")
    with capture_logs() as logs:
        collector.start()
        try:
            assert wait_until(lambda: any(e["event"] == "collector_connect_failed" for e in logs))
        finally:
            collector.close(timeout=5)
            collector.ingest.index.close()
    failure = next(e for e in logs if e["event"] == "collector_connect_failed")
    assert "certificate verify failed" in failure["error"] and not collector.connected.is_set()


def test_checks_probe_connects_over_tls_and_reports_a_broker_it_cannot_verify(
    mosquitto_factory: Callable[..., Mosquitto], broker_pki: TlsFiles, tmp_path: Path
) -> None:
    broker = mosquitto_factory(tls=broker_pki, require_certificate=True)
    pki = broker_pki
    tls = TlsConfig(ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key))
    ok = probe(ClientSpec("probe-ok", tls=tls), broker.host, broker.port, keepalive=30, timeout=10)
    assert ok == f"{broker.host}:{broker.port} accepted MQTT 5 over TLS"
    other_ca, _, _ = make_ca(tmp_path / "other", "other-ca")
    with pytest.raises(PublishError, match="certificate verify failed"):
        probe(
            ClientSpec("probe-bad", tls=TlsConfig(ca_file=str(other_ca))),
            broker.host,
            broker.port,
            keepalive=30,
            timeout=10,
        )
