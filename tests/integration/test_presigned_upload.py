"""``sampling.upload: presigned`` end to end: a real agent, mosquitto, a collector on SeaweedFS + PostgreSQL.

- the JPEG goes straight to S3 at full resolution (the MQTT path would downscale to max_side), the
  metadata over MQTT; every sampled id is stored once, one object each;
- a PUT that fails (the store is down) falls back to MQTT; the collector waits out the 10 s outage;
- a collector that cannot presign (local files) answers with an error: the agent falls back to the
  MQTT path for every sample, and nothing is lost or stored twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.collector.index import Index
from tests.integration.test_collector_group import ScaledCollector, _clip, group, servers  # noqa: F401
from tests.integration.test_sampling_collector import _package, wait_until
from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Mosquitto
from tests.support.postgres import Postgres
from tests.support.s3 import SeaweedS3

pytestmark = pytest.mark.integration
SAMPLING = {"enabled": True, "seed": 1, "quota": {"per_minute": 10000}, "dedup": {"enabled": False},
            "random": {"enabled": True, "rate": 1.0}, "max_side": 64, "upload": "presigned",
            "upload_timeout_s": 5}  # fmt: skip


def _run_agent(tmp_path: Path, port: int, prefix: str) -> tuple[list[str], str]:
    cfg = write_config(tmp_path / "agent", port=port, prefix=prefix, source=_clip(tmp_path),
                       package=_package(tmp_path), sampling=SAMPLING)  # fmt: skip
    agent = AgentProcess(cfg)
    try:
        assert agent.wait(120) == 0, agent.output[-3000:]
    finally:
        agent.stop()
    log = tmp_path / "agent" / "state" / "samples.jsonl"
    return [json.loads(line)["id"] for line in log.read_text().splitlines()], agent.output


def _widths(location: str | Path) -> dict[str, int]:
    index = Index(location)
    try:
        return {i: json.loads(m)["image"]["width"] for i, m in index.query("SELECT id, meta FROM samples")}
    finally:
        index.close()


def test_full_resolution_goes_straight_to_s3(
    tmp_path: Path, servers: tuple[Mosquitto, Postgres, SeaweedS3], unique_prefix: str,  # noqa: F811
    group: Callable[..., ScaledCollector],  # noqa: F811
) -> None:  # fmt: skip
    mosquitto, postgres, seaweed = servers
    shared = {"backend": "s3", "index": postgres.url, "s3": seaweed.storage_config()}
    col = group("col", mosquitto.port, unique_prefix, shared, client_id="col-up").start()
    sent, output = _run_agent(tmp_path, mosquitto.port, unique_prefix)
    assert sent and "sample_upload_fallback" not in output
    wait_until(lambda: len(col.ids()) >= len(sent), 60, lambda: col.output[-3000:])
    widths = _widths(col.location)
    assert sorted(widths) == sorted(sent)
    assert set(widths.values()) == {160}  # full resolution: the MQTT path would have sent 64 px
    assert len([k for k in list(seaweed.keys()) if k.endswith(".jpg")]) == len(sent)
    assert col.stop() == 0


def test_a_collector_that_cannot_presign_gets_every_sample_over_mqtt(
    tmp_path: Path,
    mosquitto: Mosquitto,
    unique_prefix: str,
    group: Callable[..., ScaledCollector],  # noqa: F811
) -> None:
    col = group("col", mosquitto.port, unique_prefix, None, client_id="col-local").start()
    sent, output = _run_agent(tmp_path, mosquitto.port, unique_prefix)
    assert sent and "takes no direct uploads" in output
    wait_until(lambda: len(col.ids()) >= len(sent), 60, lambda: col.output[-3000:])
    widths = _widths(col.location)
    assert sorted(widths) == sorted(sent) and set(widths.values()) == {64}
    assert col.stop() == 0


@pytest.mark.own_s3
def test_a_failed_put_falls_back_and_the_collector_waits_out_the_stopped_store(
    tmp_path: Path, servers: tuple[Mosquitto, Postgres, SeaweedS3], unique_prefix: str,  # noqa: F811
    group: Callable[..., ScaledCollector],  # noqa: F811
) -> None:  # fmt: skip
    mosquitto, postgres, seaweed = servers
    shared = {"backend": "s3", "index": postgres.url, "s3": seaweed.storage_config()}
    col = group("col", mosquitto.port, unique_prefix, shared, client_id="col-down").start()
    seaweed.stop(grace=0.5)  # the collector still presigns (a local HMAC); every PUT is refused
    stopped = time.monotonic()
    sent, output = _run_agent(tmp_path, mosquitto.port, unique_prefix)
    assert sent and "upload failed" in output
    wait_until(lambda: "collector_backend_unavailable" in col.output, 30, lambda: col.output[-3000:])
    assert col.ids() == []  # nothing committed without its object
    time.sleep(max(0.0, 10 - (time.monotonic() - stopped)))  # the store is down for 10 s
    seaweed.start()
    wait_until(lambda: len(col.ids()) >= len(sent), 60, lambda: col.output[-3000:])
    widths = _widths(col.location)
    assert sorted(widths) == sorted(sent) and set(widths.values()) == {64}  # all came the MQTT way
    assert "collector_backend_recovered" in col.output
    assert col.stop() == 0


def _publish_sample(port: int, prefix: str, doc: dict[str, Any], data: bytes, fallback: bool) -> None:
    """One sample over MQTT 5 as the agent sends it, with ``upload: fallback`` when asked."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes

    from agent.mqtt import new_properties
    from agent.protocol.upload import FALLBACK, UPLOAD_PROPERTY
    from agent.protocol.wire import CONTENT_TYPE, META_PROPERTY
    from tests.unit.collector.samples import topic

    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        props = new_properties(PacketTypes.PUBLISH)
        props.ContentType = CONTENT_TYPE
        props.UserProperty = [(META_PROPERTY, json.dumps(doc))] + (
            [(UPLOAD_PROPERTY, FALLBACK)] if fallback else []
        )
        client.publish(topic(doc["device"], prefix=prefix), data, qos=1, properties=props).wait_for_publish(
            10
        )
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_put_that_landed_unnoticed_is_replaced_by_its_fallback_not_quarantined(
    tmp_path: Path, servers: tuple[Mosquitto, Postgres, SeaweedS3], unique_prefix: str,  # noqa: F811
    group: Callable[..., ScaledCollector],  # noqa: F811
) -> None:  # fmt: skip
    """The agent's PUT reached the store but its answer did not reach the agent (a timeout, a
    reset): the full-resolution object sits under the sample's key with no row, and the same id
    then comes over MQTT, downscaled, marked ``upload: fallback``. It is stored with one row and
    its object replaced, not quarantined as a conflicting copy. The same message without the
    mark (a device bug reusing an id) stays a conflict: the first copy kept, the message
    quarantined."""
    from agent.collector.messages import sample_key
    from tests.unit.collector.samples import jpeg, meta

    mosquitto, postgres, seaweed = servers
    prefix = f"fb-{unique_prefix}"
    shared = {"backend": "s3", "index": postgres.url, "s3": seaweed.storage_config(prefix=prefix)}
    col = group("col", mosquitto.port, unique_prefix, shared, client_id="col-fb").start()
    s3 = seaweed.client()
    docs = {}
    for fallback in (True, False):
        full, small = jpeg(160, 120, seed=3), jpeg(64, 48, seed=3)
        doc = meta(small)
        s3.put_object(
            Bucket=seaweed.bucket, Key=f"{prefix}/{sample_key(doc)}", Body=full
        )  # the unnoticed PUT
        _publish_sample(mosquitto.port, unique_prefix, doc, small, fallback)
        docs[fallback] = (doc, full, small)
    index = Index(postgres.url)
    try:
        wait_until(lambda: index.query("SELECT count(*) FROM quarantine")[0][0] >= 1
                   and len(col.ids()) >= 1, 60, lambda: col.output[-3000:])  # fmt: skip
        time.sleep(1.0)  # anything else would have landed by now
        assert col.ids() == [docs[True][0]["id"]]
        ((reason,),) = index.query("SELECT reason FROM quarantine")
        assert "already stored with a different image" in reason
    finally:
        index.close()

    def body(doc: dict[str, Any]) -> bytes:
        return bytes(s3.get_object(Bucket=seaweed.bucket, Key=f"{prefix}/{sample_key(doc)}")["Body"].read())

    assert body(docs[True][0]) == docs[True][2]  # replaced by what came with the row
    assert body(docs[False][0]) == docs[False][1]  # the first copy stays
    assert "presigned_upload_replaced" in col.output
    assert col.stop() == 0
