"""Collector ingest of 50 KB samples on each backend, and two collectors in one shared group.

Prints, in one run: one collector on SQLite/local files (the baseline), one on PostgreSQL/S3
(real servers on loopback: PostgreSQL 15 with fsync on, SeaweedFS), and two on PostgreSQL/S3 in
one MQTT 5 shared-subscription group. As in bench_collector.py, the samples are queued in the
broker while the collectors' sessions are offline, then the collectors start and are timed from
the first stored sample until the index holds all N. Targets: two >= 1.6x one; PG/S3 >= 0.5x local.
Then the same pair with each collector held to ``--collector-cpu`` cores by a cgroup quota, as if
each ran on a host of its own (root only; skipped otherwise): on 2 shared cores one uncapped
collector and the object store already keep both cores busy, so the uncapped pair can only share
them; the capped pair shows whether the shared parts (broker group, PostgreSQL, the store) let
collectors add up. Last, the same N objects PUT straight into the S3 store (no broker, no index):
every collector of a group writes to that one store, so its rate bounds what any number of them
can reach. CPU milliseconds per stored sample of each part, and the cores busy, close the report.

    python scripts/bench_collector_scale.py [--samples 1000] [--size 50000] [--collector-cpu 0.4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
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


def cpu_seconds() -> tuple[dict[str, float], float]:
    """CPU seconds used so far by each process name (summed over its processes, threads included),
    and by the whole machine (every core, from /proc/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    by_name: dict[str, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        by_name[name] = by_name.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(v) for v in cpu) - int(cpu[3]) - int(cpu[4])  # all but idle and iowait
    return by_name, busy / tick


class Window:
    """CPU used between two points, per stored sample, by the parts the collectors depend on."""

    PARTS = {"collector": "python", "postgres": "postgres", "s3": "weed", "broker": "mosquitto"}

    def __init__(self) -> None:
        self.before = cpu_seconds()
        self.t0 = time.perf_counter()

    def close(self, samples: int) -> dict[str, float]:
        after = cpu_seconds()
        wall = time.perf_counter() - self.t0
        out = {part: (after[0].get(name, 0.0) - self.before[0].get(name, 0.0)) * 1000 / samples
               for part, name in self.PARTS.items()}  # fmt: skip
        out["cores_busy"] = (after[1] - self.before[1]) / wall
        return out


class CpuCap:
    """A CPU quota per collector process (a cgroup each, ``quota`` cores), as if each ran on a host
    of its own: on 2 shared cores one uncapped collector and the store already keep both cores
    busy, so two uncapped collectors can only share them. Capped, the pair shows whether the shared
    parts (broker group, PostgreSQL, the store) let collectors add up. Needs root and the cgroup
    ``cpu`` controller (v1 ``cpu.cfs_quota_us`` or v2 ``cpu.max``); ``None`` when unavailable."""

    def __init__(self, root: Path, quota: float, v2: bool) -> None:
        self.root, self.quota, self.v2 = root, quota, v2
        self.made: list[Path] = []

    @classmethod
    def find(cls, quota: float) -> CpuCap | None:
        v1 = Path("/sys/fs/cgroup/cpu")
        if (v1 / "cpu.cfs_quota_us").exists() and os.access(v1, os.W_OK):
            return cls(v1, quota, v2=False)
        v2 = Path("/sys/fs/cgroup")
        controllers = v2 / "cgroup.subtree_control"
        if controllers.exists() and "cpu" in controllers.read_text().split() and os.access(v2, os.W_OK):
            return cls(v2, quota, v2=True)
        return None

    def wrap(self, name: str, cmd: list[str]) -> list[str]:
        """``cmd`` started inside a fresh cgroup ``name`` held to ``quota`` cores."""
        group = self.root / f"bench-{name}"
        group.mkdir(exist_ok=True)
        period = 10_000  # short periods: a throttled collector stalls 6 ms at a time, not 60
        if self.v2:
            (group / "cpu.max").write_text(f"{int(self.quota * period)} {period}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(period))
            (group / "cpu.cfs_quota_us").write_text(str(int(self.quota * period)))
        self.made.append(group)
        return ["/bin/sh", "-c", f'echo $$ > {group / "cgroup.procs"} && exec "$@"', "sh", *cmd]

    def close(self) -> None:
        for group in self.made:
            with contextlib.suppress(OSError):  # still busy: left for the next run's mkdir
                group.rmdir()


def run(
    port: int,
    n: int,
    size: int,
    work: Path,
    *,
    storage: dict[str, Any],
    count: Callable[[], int],
    k: int,
    cpu: dict[str, float] | None = None,
    cap: CpuCap | None = None,
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
        cmd = [sys.executable, "-m", "agent", "collector", "--config", str(path)]
        cmds.append(cmd if cap is None else cap.wrap(f"{work.name}-{i}", cmd))
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
        window = Window()
        while count() < n:
            time.sleep(0.05)
            if time.perf_counter() - start > 600:
                raise SystemExit(f"collectors stored {count()} of {n} within 600 s")
        rate = (n - first) / (time.perf_counter() - t0)
        if cpu is not None:
            cpu.update(window.close(n - first))
        return rate
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
    p.add_argument("--collector-cpu", type=float, default=0.4,
                   help="cores each collector may use in the capped pair (0: skip it)")  # fmt: skip
    args = p.parse_args()
    cap = CpuCap.find(args.collector_cpu) if args.collector_cpu > 0 else None
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    broker, port = start_broker(work)
    pg = Postgres(fsync=True).start()
    s3 = SeaweedS3(work / "s3").start()
    rates: dict[str, float] = {}
    cpus: dict[str, dict[str, float]] = {}
    counters: list[Counter] = []
    try:
        local = work / "local"
        local.mkdir()
        counters.append(Counter(local / "store" / "index.db"))
        cpus["local"] = {}
        rates["local"] = run(port, args.samples, args.size, local, storage={"root": str(local / "store")},
                             count=counters[-1], k=1, cpu=cpus["local"])  # fmt: skip
        for name, k, capped in (("pg1", 1, None), ("pg2", 2, None), ("cap1", 1, cap), ("cap2", 2, cap)):
            if name.startswith("cap") and capped is None:
                continue
            w = work / name
            w.mkdir()
            url = pg.new_database()
            doc = {"backend": "s3", "index": url, "s3": s3.storage_config(prefix=name)}
            Index(url).close()  # the schema, before the counter reads it
            counters.append(Counter(url))
            cpus[name] = {}
            rates[name] = run(port, args.samples, args.size, w, storage=doc, count=counters[-1], k=k,
                              cpu=cpus[name], cap=capped)  # fmt: skip
        rates["store"] = store_alone(s3, args.samples, args.size)
    finally:
        for c in counters:
            c.close()
        if cap is not None:
            cap.close()
        s3.stop()
        pg.cleanup()
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    report(args, rates, cpus, cap)
    return 0


def report(
    args: argparse.Namespace, rates: dict[str, float], cpus: dict[str, dict[str, float]], cap: CpuCap | None
) -> None:
    kb = args.size // 1000
    cores = os.cpu_count() or 1
    print(f"collector ingest, {args.samples} x {kb} KB samples (samples/s):")
    print(f"  1 collector, SQLite + local files:  {rates['local']:7.0f}  (baseline)")
    pg_vs_local = rates["pg1"] / rates["local"]
    print(f"  1 collector, PostgreSQL + S3:       {rates['pg1']:7.0f}  {pg_vs_local:.2f}x local"
          " (target >= 0.5)")  # fmt: skip
    print(f"  2 collectors, PostgreSQL + S3:      {rates['pg2']:7.0f}  {rates['pg2'] / rates['pg1']:.2f}x one"
          " (target >= 1.6)")  # fmt: skip
    if cap is None:
        print("  capped pair: skipped (needs root and a writable cgroup cpu controller)")
    else:
        q = cap.quota
        print(f"  1 collector held to {q:g} core:       {rates['cap1']:7.0f}")
        ratio = rates["cap2"] / rates["cap1"]
        print(f"  2 collectors held to {q:g} core each: {rates['cap2']:7.0f}  {ratio:.2f}x one"
              " (each collector's cores its own, as on separate hosts)")  # fmt: skip
    store = rates["store"]
    print(f"  S3 store alone, 16 PUTs in flight:  {store:7.0f}  {store / rates['pg1']:.2f}x one"
          " (no broker, no index: what collectors sharing this store can approach)")  # fmt: skip
    print("CPU ms per stored sample while timed (collector includes this script's 50 ms poll):")
    print(f"                  collector  postgres     s3  broker   cores busy of {cores}")
    labels = {"local": "1 local", "pg1": "1 PG + S3", "pg2": "2 PG + S3"}
    labels |= {"cap1": "1 capped", "cap2": "2 capped"}
    for key, label in labels.items():
        if key in cpus:
            c = cpus[key]
            print(f"  {label:12s} {c['collector']:10.2f} {c['postgres']:9.2f} {c['s3']:6.2f}"
                  f" {c['broker']:7.2f} {c['cores_busy']:12.2f}")  # fmt: skip
    c = cpus["pg2"]
    per_sample = c["collector"] + c["postgres"] + c["s3"] + c["broker"]
    ceiling = cores * 1000 / per_sample
    print(
        f"CPU ceiling of this machine for two collectors on PostgreSQL + S3: {cores} cores / "
        f"{per_sample:.2f} ms per sample = {ceiling:.0f} samples/s; "
        f"they reached {rates['pg2'] / ceiling:.0%} of it"
    )


if __name__ == "__main__":
    raise SystemExit(main())
