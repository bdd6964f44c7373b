"""The sampler: policies, quotas, near-duplicates, the worker, the wire format, stats and the log."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest

from agent.config.observers import QuotaConfig, SamplingPolicyConfig
from agent.errors import PublishError
from agent.protocol.schema import load_schema
from agent.protocol.wire import CONTENT_TYPE, unframe
from agent.publish import Priority
from agent.testing import RecordingSink
from tests.unit.sampling.helpers import TOPIC, Clock, frame, make, payload, result

LOW = SamplingPolicyConfig(enabled=True, min_score=0.3, max_score=0.9)
SCHEMA = load_schema("sample")


def test_only_unsure_frames_are_sent_with_image_and_metadata(tmp_path: Path) -> None:
    sink = RecordingSink()
    sampler = make(sink, low_confidence=LOW, log_path=tmp_path / "samples.jsonl")
    for seq, top in enumerate([0.99, 0.6, 0.97, 0.5]):
        sampler.observe(frame(seq), result(top), payload(seq))
    sampler.close()
    assert len(sink.messages) == 2
    for msg in sink.messages:
        assert (msg.topic, msg.qos, msg.priority, msg.content_type) == (
            TOPIC,
            1,
            Priority.SAMPLE,
            CONTENT_TYPE,
        )
        meta = json.loads(dict(msg.user_properties)["meta"])
        jsonschema.validate(meta, SCHEMA)
        assert meta["reasons"] == ["low_confidence"] and meta["device"] == "cam-01"
        image = cv2.imdecode(np.frombuffer(msg.payload, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[:2] == (meta["image"]["height"], meta["image"]["width"])
    metas = [json.loads(dict(m.user_properties)["meta"]) for m in sink.messages]
    assert [m["frame"] for m in metas] == [1, 3]
    logged = [json.loads(line)["id"] for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert logged == [m["id"] for m in metas] == list(sampler.sent_ids)
    stats = sampler.stats()
    assert stats["sent"] == 2 and stats["by_policy"] == {"low_confidence": 2}


def test_mqtt311_frames_metadata_before_the_jpeg() -> None:
    sink = RecordingSink()
    sampler = make(sink, mqtt5=False, low_confidence=LOW)
    sampler.observe(frame(0), result(0.5), payload())
    sampler.close()
    (msg,) = sink.messages
    assert msg.content_type is None and msg.user_properties == ()
    meta, jpeg = unframe(msg.payload)
    jsonschema.validate(json.loads(meta), SCHEMA)
    assert jpeg.startswith(b"\xff\xd8")


def test_a_stopped_line_is_sent_once_per_window() -> None:
    sink, clock = RecordingSink(), Clock()
    sampler = make(sink, clock=clock, low_confidence=LOW, dedup={"window_s": 30.0, "max_distance": 4})
    for seq in range(1000):
        clock.now += 0.01
        sampler.observe(frame(seq, seed=5), result(0.5), payload(seq))  # the same image every time
    sampler.close()
    assert len(sink.messages) == 1
    assert sampler.stats()["suppressed"]["duplicate"] == 999


def test_quota_per_policy_and_global() -> None:
    sink, clock = RecordingSink(), Clock()
    low = SamplingPolicyConfig(enabled=True, quota=QuotaConfig(per_minute=3))
    sampler = make(sink, clock=clock, low_confidence=low, quota={"per_hour": 5})
    for seq in range(10):
        sampler.observe(frame(seq), result(0.5), payload(seq))
    clock.now += 60.0
    for seq in range(10, 20):
        sampler.observe(frame(seq), result(0.5), payload(seq))
    sampler.close()
    assert len(sink.messages) == 5  # 3 in the first minute, then the hour's 5 are spent
    assert sampler.stats()["suppressed"]["quota"] == 15


def test_several_policies_fire_together_and_are_all_named() -> None:
    sink = RecordingSink()
    sampler = make(
        sink,
        low_confidence=LOW,
        classes=SamplingPolicyConfig(enabled=True, labels=["scratch"]),
        random=SamplingPolicyConfig(enabled=True, rate=1.0),
    )
    sampler.observe(frame(0), result(0.6, label="scratch"), payload())
    sampler.close()
    meta = json.loads(dict(sink.messages[0].user_properties)["meta"])
    assert meta["reasons"] == ["low_confidence", "classes", "random"]


def test_drift_boost_only_while_the_alarm_is_on() -> None:
    sink = RecordingSink()
    sampler = make(sink, drift=SamplingPolicyConfig(enabled=True, rate=1.0))
    sampler.observe(frame(0), result(0.99), payload())
    sampler.set_drift(True)
    sampler.observe(frame(1), result(0.99), payload())
    sampler.set_drift(False)
    sampler.observe(frame(2), result(0.99), payload())
    sampler.close()
    assert [json.loads(dict(m.user_properties)["meta"])["frame"] for m in sink.messages] == [1]


def test_snapshot_samples_the_next_frame_whatever_the_policies() -> None:
    sink = RecordingSink()
    sampler = make(sink, enabled=False)
    future = sampler.request_snapshot()
    sampler.observe(frame(0), result(0.99), payload())
    sample_id = future.result(1.0)
    sampler.close()
    meta = json.loads(dict(sink.messages[0].user_properties)["meta"])
    assert meta["id"] == sample_id and meta["reasons"] == ["snapshot"]


def test_image_is_shrunk_to_fit_the_packet_limit() -> None:
    sink = RecordingSink()
    rng = np.random.default_rng(0)
    noisy = frame(0)
    noisy.image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    sampler = make(sink, low_confidence=LOW, max_packet=20000)
    sampler.observe(noisy, result(0.5), payload())
    sampler.close()
    (msg,) = sink.messages
    meta_text = dict(msg.user_properties)["meta"]
    assert len(msg.payload) + len(meta_text) + len(TOPIC) < 20000
    assert json.loads(meta_text)["image"]["original_width"] == 640


def test_too_large_and_publish_failures_are_counted_not_raised() -> None:
    sampler = make(RecordingSink(), low_confidence=LOW, max_packet=1024, dedup={"enabled": False})
    sampler.observe(frame(0), result(0.5), payload())
    sampler.close()
    assert sampler.stats()["dropped"]["too_large"] == 1
    refusing = RecordingSink()
    refusing.fail = PublishError("outbox refused")
    failing = make(refusing, low_confidence=LOW)
    failing.observe(frame(0), result(0.5), payload())
    failing.close()
    assert failing.stats()["dropped"]["publish_failed"] == 1 and failing.stats()["sent"] == 0


def test_full_queue_drops_and_counts() -> None:
    class Blocking(RecordingSink):
        def publish(self, *args: object, **kwargs: object) -> None:
            gate.wait(5)
            super().publish(*args, **kwargs)  # type: ignore[arg-type]

    gate = threading.Event()
    sink = Blocking()
    sampler = make(sink, low_confidence=LOW, queue_size=2)
    for seq in range(6):
        sampler.observe(frame(seq), result(0.5), payload(seq))
    gate.set()
    sampler.close()
    stats = sampler.stats()
    assert stats["dropped"]["queue_full"] >= 3
    assert stats["sent"] + stats["dropped"]["queue_full"] == 6


@pytest.mark.parametrize("top", [0.2, 0.95])
def test_disabled_sampler_sends_nothing(top: float) -> None:
    sink = RecordingSink()
    sampler = make(sink, enabled=False, low_confidence=LOW, random=SamplingPolicyConfig(enabled=True))
    sampler.observe(frame(0), result(top), payload())
    sampler.close()
    assert sink.messages == []


def test_sample_metadata_carries_the_models_boxes_and_anomaly_score() -> None:
    """So reviewers and labeling tools (Label Studio pre-annotations) start from the model's guess."""
    from dataclasses import replace

    from agent.model.result import Detection

    sink = RecordingSink()
    sampler = make(sink, low_confidence=LOW)
    boxes = (
        Detection("scratch", 0.61234, (0.1, 0.2, 0.30001, 0.4)),
        Detection("ok", 0.5, (0.5, 0.5, 0.6, 0.7)),
    )
    sampler.observe(frame(0), replace(result(0.6, "scratch"), detections=boxes), payload(0))
    sampler.observe(frame(1, seed=9), replace(result(0.5), anomaly_score=0.734567), payload(1))
    sampler.close()
    first, second = (json.loads(dict(m.user_properties)["meta"]) for m in sink.messages)
    for meta in (first, second):
        jsonschema.validate(meta, SCHEMA)
    assert first["detections"] == [
        {"label": "scratch", "score": 0.6123, "box": [0.1, 0.2, 0.3, 0.4]},
        {"label": "ok", "score": 0.5, "box": [0.5, 0.5, 0.6, 0.7]},
    ]
    assert "anomaly_score" not in first and second["anomaly_score"] == 0.7346 and "detections" not in second


class _Refusing:
    """An uploader whose PUT always fails (as a timeout after the store took it would look)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def upload(self, meta: dict[str, object], data: bytes) -> bool:
        self.asked.append(str(meta["id"]))
        return False

    def close(self) -> None:
        pass


def test_a_failed_presigned_upload_goes_over_mqtt_marked_as_its_fallback() -> None:
    """The fallback says so (``upload: fallback``): its PUT may have landed unnoticed, and the
    collector then replaces that object instead of quarantining the sample as a conflict. A
    device without presigned uploads sends no such mark."""
    from agent.sampling.sampler import Sampler

    uploader = _Refusing()
    sink = RecordingSink()
    plain = make(sink, low_confidence=LOW)
    with_upload = Sampler(plain.cfg, sink=sink, wire=plain._wire, device=plain._device, uploader=uploader)
    with_upload.observe(frame(1), result(0.6), payload(1))
    with_upload.close()
    plain.observe(frame(2), result(0.6), payload(2))
    plain.close()
    fallback, direct = (dict(m.user_properties) for m in sink.messages)
    assert uploader.asked == [json.loads(fallback["meta"])["id"]]
    assert fallback.get("upload") == "fallback" and "upload" not in direct
    assert with_upload.stats()["upload"] == {"presigned": 0, "fallback": 1}
