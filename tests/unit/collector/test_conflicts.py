"""The same sample id with another image is a conflict, quarantined; the same image a duplicate."""

from __future__ import annotations

from tests.unit.collector.conftest import Parts
from tests.unit.collector.samples import jpeg, meta, v5


def _count(parts: Parts, table: str) -> int:
    return int(parts.index.query(f"SELECT count(*) FROM {table}")[0][0])


def test_a_redelivery_with_the_same_image_is_a_duplicate(parts: Parts) -> None:
    data = jpeg(seed=1)
    doc = meta(data)
    parts.ingest.process([v5(doc, data)])
    parts.ingest.process([v5(doc, data)])
    assert parts.ingest.counts["duplicates"] == 1 and parts.ingest.counts["conflicts"] == 0
    assert _count(parts, "quarantine") == 0


def test_the_same_id_with_another_image_is_quarantined_as_a_conflict(parts: Parts) -> None:
    first, other = jpeg(seed=1), jpeg(seed=2)
    doc = meta(first)
    parts.ingest.process([v5(doc, first)])
    parts.ingest.process([v5({**doc, "image": {**doc["image"], "bytes": len(other)}}, other)])
    assert parts.ingest.counts["conflicts"] == 1 and parts.ingest.counts["duplicates"] == 0
    ((reason, path),) = parts.index.query("SELECT reason, path FROM quarantine")
    assert "already stored with a different image" in reason
    assert parts.storage.read(path) == other  # the conflicting message is kept as it came
    stored = parts.index.sample(doc["id"])
    assert stored is not None and parts.storage.read(stored["path"]) == first  # the first stays


def test_a_conflict_inside_one_batch_is_quarantined(parts: Parts) -> None:
    first, other = jpeg(seed=1), jpeg(seed=2)
    doc = meta(first)
    clash = {**doc, "image": {**doc["image"], "bytes": len(other)}}
    parts.ingest.process([v5(doc, first, mid=1), v5(clash, other, mid=2)])
    assert parts.ingest.counts["conflicts"] == 1 and _count(parts, "samples") == 1
    assert "different images" in parts.index.query("SELECT reason FROM quarantine")[0][0]
