"""The collector on PostgreSQL and S3 (SeaweedFS), both real servers on loopback, and their faults.

- a batch is stored once: one object per sample, one row, one history entry, on both backends;
- two collectors racing on the same ids store each once;
- PostgreSQL restarted mid-ingest, the S3 server stopped for 10 s: the batch waits, nothing lost;
- an object written without its row (a kill between the two) is found and repaired by fsck;
- wrong credentials and a missing bucket: one clear line at start;
- the review app's votes and the reports work on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.collector import fsck
from agent.collector.config import CollectorConfig, load_collector_config
from agent.collector.index import Index, IndexUnavailableError
from agent.collector.ingest import Ingest, Prepared
from agent.collector.messages import Incoming, Parser
from agent.collector.review.service import ReviewService
from agent.collector.storage import StorageError, StorageUnavailableError, open_storage
from tests.support.postgres import Postgres
from tests.support.s3 import SeaweedS3
from tests.unit.collector.samples import jpeg, meta, v5

pytestmark = pytest.mark.integration


def scaled_config(tmp_path: Path, pg: Postgres, s3: SeaweedS3, **s3_extra: Any) -> CollectorConfig:
    doc = {
        "storage": {"backend": "s3", "index": pg.url, "s3": s3.storage_config(**s3_extra)},
        "devices": {"allowed_prefixes": ["cam-"]},
    }
    path = tmp_path / f"collector-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_collector_config(path)


def messages(n: int, seed: int = 0) -> list[Incoming]:
    out = []
    for i in range(n):
        data = jpeg(seed=seed * 1000 + i)
        out.append(v5(meta(data), data, mid=i + 1))
    return out


@pytest.fixture
def scaled(
    tmp_path: Path, postgres: Postgres, seaweed: SeaweedS3
) -> Iterator[tuple[CollectorConfig, Ingest]]:
    cfg = scaled_config(tmp_path, postgres, seaweed)
    storage, index = open_storage(cfg), Index(cfg.index_location)
    yield cfg, Ingest(Parser(cfg), storage, index)
    index.close()
    storage.close()


def _count(index: Index, table: str) -> int:
    return int(index.query(f"SELECT count(*) FROM {table}")[0][0])


def test_a_batch_is_stored_once_in_s3_and_postgresql(
    scaled: tuple[CollectorConfig, Ingest], seaweed: SeaweedS3
) -> None:
    _cfg, ingest = scaled
    batch = messages(20)
    ingest.process(batch)
    ingest.process(batch)  # a redelivery
    assert _count(ingest.index, "samples") == 20
    assert _count(ingest.index, "history") == 20
    assert _count(ingest.index, "review") == 20
    assert ingest.counts["duplicates"] == 20
    keys = seaweed.keys()
    assert len(keys) == 20 and all(k.endswith(".jpg") for k in keys)
    row = ingest.index.sample(ingest.index.query("SELECT id FROM samples ORDER BY id")[0][0])
    assert row is not None and ingest.storage.read(row["path"])[:2] == b"\xff\xd8"


def test_two_collectors_racing_on_the_same_ids_store_each_once(
    tmp_path: Path,
    postgres: Postgres,
    seaweed: SeaweedS3,
) -> None:
    batch = messages(60, seed=1)
    ingests = []
    for _ in range(2):
        cfg = scaled_config(tmp_path, postgres, seaweed)
        ingests.append(Ingest(Parser(cfg), open_storage(cfg), Index(cfg.index_location)))
    start = threading.Barrier(2)

    def run(ingest: Ingest) -> None:
        start.wait()
        for i in range(0, 60, 10):
            ingest.process(batch[i : i + 10])

    threads = [threading.Thread(target=run, args=(i,)) for i in ingests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    index = ingests[0].index
    assert _count(index, "samples") == 60
    assert _count(index, "history") == 60  # one "received" per sample, whoever won
    assert sum(i.counts["stored"] for i in ingests) == 60
    assert sum(i.counts["duplicates"] for i in ingests) == 60
    assert len(seaweed.keys()) == 60
    for i in ingests:
        i.index.close()
        i.storage.close()


def test_two_collectors_racing_on_one_id_with_different_images_keep_the_first(
    tmp_path: Path, postgres: Postgres, seaweed: SeaweedS3
) -> None:
    """Both collectors pass the "is it stored?" check before either writes (held at a barrier), so
    both try to store every id: one image per id stays, never overwritten, the other is quarantined."""
    n = 30
    ids = [meta(jpeg())["id"] for _ in range(n)]
    sent: dict[str, dict[str, bytes]] = {"a": {}, "b": {}}
    batches: dict[str, list[Incoming]] = {"a": [], "b": []}
    for who, seed in (("a", 100), ("b", 200)):
        for i, sample_id in enumerate(ids):
            data = jpeg(seed=seed + i)
            # the same predicted label (so the same key) for half the ids, another for the rest
            label = "scratch" if who == "b" and i % 2 else "ok"
            doc = {**meta(data, label=label), "id": sample_id, "frame": 1 if who == "a" else 2}
            sent[who][sample_id] = data
            batches[who].append(v5(doc, data, mid=i + 1))
    ingests = []
    for _ in range(2):
        cfg = scaled_config(tmp_path, postgres, seaweed)
        ingests.append(Ingest(Parser(cfg), open_storage(cfg), Index(cfg.index_location)))
    planned = threading.Barrier(2, timeout=60)

    def run(ingest: Ingest, batch: list[Incoming]) -> None:
        plan = ingest._plan

        def plan_then_wait(prepared: Prepared) -> Any:
            result = plan(prepared)
            planned.wait()  # both collectors have found every id new: both will write
            return result

        ingest._plan = plan_then_wait  # type: ignore[method-assign]
        for i in range(0, n, 10):
            ingest.process(batch[i : i + 10])

    threads = [
        threading.Thread(target=run, args=(ing, batches[k])) for ing, k in zip(ingests, sent, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    index = ingests[0].index
    assert _count(index, "samples") == n
    assert sum(i.counts["stored"] for i in ingests) == n
    assert sum(i.counts["conflicts"] for i in ingests) == n  # every loser quarantined, none dropped
    assert _count(index, "quarantine") == n
    assert len(seaweed.keys(prefix="demo-defects/")) == n  # no orphan left under another label
    for row in index.dicts("SELECT id, path, meta FROM samples"):
        winner = "a" if json.loads(row["meta"])["frame"] == 1 else "b"
        loser = "b" if winner == "a" else "a"
        assert (
            seaweed.client().get_object(Bucket=seaweed.bucket, Key=row["path"])["Body"].read()
            == (sent[winner][row["id"]])
        ), "the stored image is not the one of the row that won"
        (qpath,) = [
            r[0] for r in index.query("SELECT path FROM quarantine WHERE path LIKE ?", (f"%{row['id']}%",))
        ]
        assert (
            seaweed.client().get_object(Bucket=seaweed.bucket, Key=qpath)["Body"].read()
            == sent[loser][row["id"]]
        )
    for i in ingests:
        i.index.close()
        i.storage.close()


def test_a_batch_stored_before_the_previous_one_is_recorded_stays_exactly_once(
    scaled: tuple[CollectorConfig, Ingest], seaweed: SeaweedS3
) -> None:
    """The collector stores a batch while the previous batch's rows commit (only when they share
    no id); even a shared id, stored from both before either row commits, is stored once."""
    _cfg, ingest = scaled
    first = messages(5, seed=8)
    second = [first[2], *messages(3, seed=9)]  # a redelivery of one sample of the first batch
    a, b = ingest.prepare(first), ingest.prepare(second)
    stored_a, stored_b = ingest.store(a), ingest.store(b)
    assert ingest.record(a, stored_a) == 5
    assert ingest.record(b, stored_b) == 3
    assert _count(ingest.index, "samples") == 8 and _count(ingest.index, "history") == 8
    assert ingest.counts["duplicates"] == 1 and len(seaweed.keys()) == 8


def test_postgresql_restarted_mid_ingest_loses_nothing(
    scaled: tuple[CollectorConfig, Ingest], postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.collector import index_pg

    monkeypatch.setattr(index_pg, "_CONNECT_TIMEOUT_S", 2.0)  # how long a commit waits for the database
    _cfg, ingest = scaled
    ingest.process(messages(5, seed=2))
    postgres.stop()
    pending = ingest.prepare(messages(5, seed=3))
    with pytest.raises(IndexUnavailableError, match="cannot reach the database"):
        ingest.commit(pending)  # the collector keeps the batch unacknowledged and retries
    postgres.start()
    ingest.commit(pending)
    assert _count(ingest.index, "samples") == 10


@pytest.mark.own_s3
def test_the_s3_server_stopped_for_10s_is_waited_out(
    scaled: tuple[CollectorConfig, Ingest],
    seaweed: SeaweedS3,
) -> None:
    _cfg, ingest = scaled
    seaweed.stop(grace=0.5)
    pending = ingest.prepare(messages(5, seed=4))
    with pytest.raises(StorageUnavailableError):
        ingest.commit(pending)
    assert _count(ingest.index, "samples") == 0  # no row without its object
    time.sleep(10)
    seaweed.start()
    ingest.commit(pending)
    assert _count(ingest.index, "samples") == 5 and len(seaweed.keys()) == 5


def test_an_object_without_its_row_is_found_and_repaired_by_fsck(
    scaled: tuple[CollectorConfig, Ingest],
    seaweed: SeaweedS3,
) -> None:
    _cfg, ingest = scaled
    ingest.process(messages(3, seed=5))
    pending = ingest.prepare(messages(1, seed=6))
    sample = next(iter(pending.samples.values()))
    ingest.storage.write_batch([(sample.row.path, sample.jpeg)])  # killed before the row was committed
    report = fsck.check(ingest.index, ingest.storage, settle_s=0)
    assert [(f.kind, f.path) for f in report.findings] == [("orphan", sample.row.path)]
    fsck.repair(report, ingest.index, ingest.storage)
    assert fsck.check(ingest.index, ingest.storage, settle_s=0).findings == []
    assert f"quarantine/fsck/{sample.row.path}" in set(seaweed.keys())
    ingest.commit(pending)  # the redelivered message is then stored normally
    assert _count(ingest.index, "samples") == 4


def test_wrong_credentials_are_one_clear_line_at_start(
    tmp_path: Path,
    postgres: Postgres,
    seaweed: SeaweedS3,
) -> None:
    cfg = scaled_config(tmp_path, postgres, seaweed, secret_key="wrong")
    with pytest.raises(StorageError, match=r"credentials refused \(\w+\); check access_key") as info:
        open_storage(cfg)
    assert "\n" not in str(info.value) and "wrong" not in str(info.value)


def test_a_missing_bucket_is_one_clear_line_at_start(
    tmp_path: Path,
    postgres: Postgres,
    seaweed: SeaweedS3,
) -> None:
    cfg = scaled_config(tmp_path, postgres, seaweed, bucket="no-such-bucket")
    with pytest.raises(StorageError, match=r"no-such-bucket .*the bucket does not exist"):
        open_storage(cfg)


def test_an_unreachable_database_is_one_clear_line_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.collector import index_pg

    monkeypatch.setattr(index_pg, "_CONNECT_TIMEOUT_S", 1.0)  # how long the pool tries (10 s in service)
    with pytest.raises(IndexUnavailableError, match="cannot reach the database"):
        Index("postgresql://collector:secret@127.0.0.1:1/nothing")


def test_votes_and_reports_work_on_postgresql(scaled: tuple[CollectorConfig, Ingest]) -> None:
    from agent.collector.report import stats_report

    cfg, ingest = scaled
    ingest.process(messages(4, seed=7))
    service = ReviewService.open(cfg.index_location, ingest.storage, cfg.review)
    try:
        sample_id = ingest.index.query("SELECT id FROM samples ORDER BY id")[0][0]
        for reviewer in ("ann", "bob", "cyd")[: cfg.review.votes_required]:
            service.vote(sample_id, reviewer, "scratch", "web")  # the last one moves the object
        assert ingest.index.query("SELECT state, label FROM review WHERE id = ?", (sample_id,)) == [
            ("labeled", "scratch")
        ]
        path = ingest.index.sample(sample_id)["path"]  # type: ignore[index]
        assert "/labeled/scratch/" in path and ingest.storage.exists(path)
    finally:
        service.close()
    report = stats_report(ingest.index, 10 * 365 * 86400)
    assert sum(r["count"] for r in report["samples"]) == 4


def test_migrate_copies_a_local_collector_into_s3_and_postgresql_and_resumes(
    tmp_path: Path, postgres: Postgres, seaweed: SeaweedS3
) -> None:
    import subprocess
    import sys

    local = tmp_path / "local.yaml"
    local.write_text(yaml.safe_dump({"storage": {"root": str(tmp_path / "store")}}))
    cfg = load_collector_config(local)
    storage, index = open_storage(cfg), Index(cfg.index_location)
    Ingest(Parser(cfg), storage, index).process(
        [*messages(12, seed=8), v5({"id": "x", "device": "cam-01"}, b"junk", mid=99)]
    )
    index.close()
    storage.close()
    target = scaled_config(tmp_path, postgres, seaweed)
    target_path = tmp_path / "target.yaml"
    target_path.write_text(yaml.safe_dump({"storage": {"backend": "s3", "index": postgres.url,
                                                       "s3": seaweed.storage_config()}}))  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "agent",
        "collector",
        "migrate",
        "--from",
        str(local),
        "--to",
        str(target_path),
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    assert "14 objects (14 copied" in first.stdout and "migrate: 14/14 objects" in first.stderr
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert "0 copied, 14 already there" in again.stdout, again.stderr  # resumable: nothing twice
    source, dest = Index(cfg.index_location), Index(target.index_location)
    try:
        for table in ("samples", "history", "quarantine", "review"):
            sql = f"SELECT * FROM {table} ORDER BY 1"
            assert source.query(sql) == dest.query(sql), table
        dest.record([], [], [])  # the identity columns continue past the copied rows
        with dest.transaction() as db:
            db.execute("INSERT INTO quarantine (received, topic, reason, path) VALUES (1, 't', 'r', 'p')")
    finally:
        source.close()
        dest.close()
    assert len(seaweed.keys()) == 14
