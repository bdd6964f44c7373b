"""Every kind of bad message is quarantined with its reason, never stored, never raised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.collector.messages import Incoming
from agent.protocol.wire import CONTENT_TYPE
from tests.unit.collector.conftest import Parts
from tests.unit.collector.samples import defect_event, jpeg, meta, topic, v5, v311


def quarantined(parts: Parts, msg: Incoming) -> str:
    parts.ingest.process([msg])
    assert parts.ingest.counts["stored"] == 0 and parts.ingest.counts["quarantined"] == 1
    ((reason, path),) = parts.index.query("SELECT reason, path FROM quarantine")
    assert (parts.cfg.root / path).read_bytes() == msg.payload[: parts.cfg.limits.max_bytes]
    about = json.loads((parts.cfg.root / path.replace(".bin", ".json")).read_text())
    assert about["reason"] == reason and about["topic"] == msg.topic
    return str(reason)


def test_good_v5_and_v311_samples_are_stored(parts: Parts) -> None:
    a, b = jpeg(seed=1), jpeg(seed=2)
    ma, mb = meta(a, label="scratch"), meta(b)
    parts.ingest.process([v5(ma, a, mid=1), v311(mb, b, mid=2)])
    assert parts.ingest.counts["stored"] == 2
    stored = parts.cfg.root / f"demo-defects/1.0.0/unlabeled/scratch/{ma['id']}.jpg"
    assert stored.read_bytes() == a
    assert (parts.cfg.root / f"demo-defects/1.0.0/unlabeled/ok/{mb['id']}.jpg").read_bytes() == b
    row = parts.index.sample(ma["id"])
    assert row is not None and row["device"] == "cam-01" and json.loads(row["meta"]) == ma


def test_same_id_twice_is_stored_once(parts: Parts) -> None:
    data = jpeg()
    doc = meta(data)
    parts.ingest.process([v5(doc, data, mid=1), v5(doc, data, mid=2)])
    parts.ingest.process([v311(doc, data, mid=3)])
    assert parts.ingest.counts["stored"] == 1 and parts.ingest.counts["duplicates"] == 2
    assert parts.index.query("SELECT count(*) FROM samples") == [(1,)]


def _broken(good: bytes, bad: bytes) -> tuple[dict[str, object], bytes]:
    """Metadata of ``good`` (its size claims ``bad``'s length) with ``bad`` as the image."""
    doc = meta(good)
    doc["image"]["bytes"] = len(bad)
    return doc, bad


def _without(doc: dict[str, object], key: str) -> dict[str, object]:
    return {k: v for k, v in doc.items() if k != key}


def _truncated() -> tuple[dict[str, object], bytes]:
    return _broken(jpeg(seed=3), jpeg(seed=3)[:-200])


def _corrupt() -> tuple[dict[str, object], bytes]:
    data = jpeg(seed=4)
    start = data.find(b"\xff\xc0")  # the frame header onwards is zeroed: markers survive, nothing decodes
    return _broken(data, data[:start] + b"\x00" * (len(data) - start - 2) + data[-2:])


BAD = {
    "not a jpeg": (lambda: _broken(jpeg(), b"GIF89a" + b"\0" * 100), "complete JPEG"),
    "truncated jpeg": (_truncated, "complete JPEG"),
    "corrupt jpeg": (_corrupt, "does not decode"),
    "missing key": (
        lambda: (_without(meta(jpeg()), "reasons"), jpeg()),
        "'reasons' is a required",
    ),
    "wrong type": (lambda: (meta(jpeg(), frame="seven"), jpeg()), "at frame"),
    "unknown reason": (lambda: (meta(jpeg(), reasons=["because"]), jpeg()), "at reasons/0"),
    "bad id": (lambda: (meta(jpeg(), id="../../etc"), jpeg()), "at id"),
    "size mismatch": (
        lambda: (meta(jpeg(), image={"width": 64, "height": 48, "bytes": 5}), jpeg()),
        "bytes but",
    ),
    "dimension mismatch": (
        lambda: (meta(jpeg(), image={"width": 640, "height": 48, "bytes": len(jpeg())}), jpeg()),
        "metadata says 640x48",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sample_is_quarantined(parts: Parts, case: str) -> None:
    build, reason = BAD[case]
    doc, data = build()
    assert reason in quarantined(parts, v5(doc, data))  # type: ignore[arg-type]


def test_unknown_device_prefix(parts: Parts) -> None:
    data = jpeg()
    assert "not allowed" in quarantined(parts, v5(meta(data, device="rogue-1"), data))


def test_metadata_from_another_device_than_the_topic(parts: Parts) -> None:
    data = jpeg()
    doc = meta(data, device="cam-02")
    msg = Incoming(topic("cam-01"), data, CONTENT_TYPE, json.dumps(doc), 1, 1)
    assert "but the topic says" in quarantined(parts, msg)


def test_oversized_message_is_kept_truncated(parts: Parts) -> None:
    data = jpeg() + b"\0" * 400000
    msg = v5(meta(data), data)
    assert "more than limits.max_bytes" in quarantined(parts, msg)


@pytest.mark.parametrize(
    ("payload", "content_type", "meta_text", "reason"),
    [
        (b"\x00\x00\x00\x05{}", None, None, "not a sample"),
        (b"\x00\x00\x00\x02{]\xff\xd8", None, None, "not JSON"),
        (b"\xff\xd8", CONTENT_TYPE, "[1, 2]", "must be a JSON object"),
        (b"\xff\xd8", CONTENT_TYPE, '{"a": NaN', "not JSON"),
        (b"\xff\xd8", "text/plain", "{}", "content type"),
        (b"", None, None, "not a sample"),
    ],
)
def test_malformed_framing_or_json(
    parts: Parts, payload: bytes, content_type: str | None, meta_text: str | None, reason: str
) -> None:
    assert reason in quarantined(parts, Incoming(topic(), payload, content_type, meta_text, 1, 1))


def test_unexpected_topics(parts: Parts) -> None:
    data = jpeg()
    doc = meta(data)
    wrong = Incoming(
        "inspection/plant-a/line-3/cam-01/extra/sample", data, CONTENT_TYPE, json.dumps(doc), 1, 1
    )
    assert "is not inspection/SITE/LINE/DEVICE/KIND" in quarantined(parts, wrong)


def test_defect_events_are_recorded_and_bad_ones_quarantined(parts: Parts, tmp_path: Path) -> None:
    event = defect_event()
    good = Incoming(topic(kind="defect"), json.dumps(event).encode(), None, None, 1, 1)
    bad = Incoming(topic(kind="defect"), b'{"id": 1}', None, None, 2, 1)
    parts.ingest.process([good, good, bad])
    assert parts.index.query("SELECT id, label FROM events") == [(event["id"], "scratch")]
    assert parts.ingest.counts["quarantined"] == 1
