"""Collector ingest of 50 KB samples on each backend, and two collectors in one shared group.

    python scripts/bench_collector_scale.py [--samples 1000] [--size 50000]

Prints, in one run: one collector on SQLite/local files (the baseline), one on PostgreSQL/S3
(real servers on loopback: PostgreSQL 15 with fsync on, SeaweedFS), and two on PostgreSQL/S3 in
one MQTT 5 shared-subscription group. As in bench_collector.py, the samples are queued in the
broker while the collectors' sessions are offline, then the collectors start and are timed from
the first stored sample until the index holds all N. Targets: two >= 1.6x one; PG/S3 >= 0.5x local.
Last, the same N objects PUT straight into the S3 store (no broker, no index): every collector of
a group writes to that one store, so its rate bounds what any number of them can reach.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_collector import PREFIX, publish, sample_jpeg, start_broker  # noqa: E402

from agent.collector.index import Index  # noqa: E402
from tests.support.postgres import Postgres  # noqa: E402
from tests.support.s3 import SeaweedS3  # noqa: E402


def run(
    port: int, n: int, size: int, work: Path, *, storage: dict[str, Any], count: Callable[[], int], k: int
) -> float:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    cmds = []
    for i in range(k):
        cfg = {
            "broker": {
                "host": "127.0.0.1",
                "port": port,
                "client_id": f"{work.name}-{i}",
                "session_expiry_s": 600,
            },
            "subscribe": {"prefix": PREFIX, "shared_group": work.name, "defects": False},
            "storage": storage,
            "log": {"level": "warning", "format": "json"},
        }
        path = work / f"collector-{i}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        cmds.append([sys.executable, "-m", "agent", "collector", "--config", str(path)])
    procs = [subprocess.Popen(c, env=env) for c in cmds]  # create the sessions and subscriptions
    time.sleep(6.0)
    for p in procs:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    publish(port, n, size)  # queued for the offline sessions, split by the shared group
    start = time.perf_counter()
    procs = [subprocess.Popen(c, env=env) for c in cmds]
    try:
        while (first := count()) == 0:
            time.sleep(0.01)
        t0 = time.perf_counter()
        while count() < n:
            time.sleep(0.05)
            if time.perf_counter() - start > 600:
                raise SystemExit(f"collectors stored {count()} of {n} within 600 s")
        return (n - first) / (time.perf_counter() - t0)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)


class Counter:
    """Stored samples, polled every 50 ms through one index connection kept open once the index
    exists (a new PostgreSQL connection and migration check per poll took CPU from the servers)."""

    def __init__(self, location: str | Path) -> None:
        self.location = location
        self.index: Index | None = None

    def __call__(self) -> int:
        if self.index is None:
            try:
                self.index = Index(self.location)
            except Exception:
                return 0
        return int(self.index.query("SELECT count(*) FROM samples")[0][0])

    def close(self) -> None:
        if self.index is not None:
            self.index.close()


def store_alone(s3: SeaweedS3, n: int, size: int) -> float:
    """PUTs/s of the same objects straight into the S3 store, as the collector sends them (batches
    of 128, If-None-Match), with no broker and no index: the ceiling for any number of collectors
    sharing this one store, since they all write to it."""
    from agent.collector.config import S3Config
    from agent.collector.s3 import S3Storage
    from agent.config.secret import Secret

    doc = s3.storage_config(prefix="alone")
    secret = Secret(doc.pop("secret_key"))
    storage = S3Storage(S3Config(**doc), secret)
    data = sample_jpeg(size)[0]
    try:
        t0 = time.perf_counter()
        for first in range(0, n, 128):
            storage.create_batch([(f"{i}.jpg", data) for i in range(first, min(n, first + 128))])
        return n / (time.perf_counter() - t0)
    finally:
        storage.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--size", type=int, default=50000)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    broker, port = start_broker(work)
    pg = Postgres(fsync=True).start()
    s3 = SeaweedS3(work / "s3").start()
    rates: dict[str, float] = {}
    counters: list[Counter] = []
    try:
        local = work / "local"
        local.mkdir()
        counters.append(Counter(local / "store" / "index.db"))
        rates["local"] = run(port, args.samples, args.size, local, storage={"root": str(local / "store")},
                             count=counters[-1], k=1)  # fmt: skip
        for k in (1, 2):
            w = work / f"pgs3x{k}"
            w.mkdir()
            url = pg.new_database()
            doc = {"backend": "s3", "index": url, "s3": s3.storage_config(prefix=f"k{k}")}
            Index(url).close()  # the schema, before the counter reads it
            counters.append(Counter(url))
            rates[f"pg{k}"] = run(port, args.samples, args.size, w, storage=doc, count=counters[-1], k=k)
        rates["store"] = store_alone(s3, args.samples, args.size)
    finally:
        for c in counters:
            c.close()
        s3.stop()
        pg.cleanup()
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    kb = args.size // 1000
    print(f"collector ingest, {args.samples} x {kb} KB samples (samples/s):")
    print(f"  1 collector, SQLite + local files:  {rates['local']:7.0f}  (baseline)")
    pg_vs_local = rates["pg1"] / rates["local"]
    print(f"  1 collector, PostgreSQL + S3:       {rates['pg1']:7.0f}  {pg_vs_local:.2f}x local"
          " (target >= 0.5)")  # fmt: skip
    print(f"  2 collectors, PostgreSQL + S3:      {rates['pg2']:7.0f}  {rates['pg2'] / rates['pg1']:.2f}x one"
          " (target >= 1.6)")  # fmt: skip
    store = rates["store"]
    print(f"  S3 store alone, 16 PUTs in flight:  {store:7.0f}  {store / rates['pg1']:.2f}x one"
          " (no broker, no index: what collectors sharing this store can approach)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
