"""A full disk under the collector: nothing is acknowledged that is not stored, and it recovers by itself.

A real collector process stores on a 2 MB tmpfs (needs root); a real mosquitto holds what the
collector has not acknowledged. Filling the disk must put the collector in the ``disk_full`` state
(logged, in its stats) without exiting; freeing space must let every sample in, each exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.integration.test_sampling_collector import CollectorProcess, Publisher, wait_until
from tests.support.mosquitto import Mosquitto
from tests.support.tmpfs import fill, small_tmpfs
from tests.unit.collector.samples import jpeg_of_size, meta

pytestmark = pytest.mark.integration
__all__ = ["small_tmpfs"]  # the fixture, imported for this module


def _states(col: CollectorProcess) -> list[str]:
    """The ``state`` of every ``collector_stats`` line so far (SIGHUP logs one)."""
    states = []
    for line in col.output.splitlines():
        if '"collector_stats"' in line:
            states.append(json.loads(line)["state"])
    return states


def _send(port: int, prefix: str, n: int) -> list[str]:
    pub = Publisher(port)
    try:
        images = [jpeg_of_size(20000, seed=i) for i in range(4)]
        sent, infos = [], []
        for i in range(n):
            doc = {**meta(images[i % 4]), "frame": i}
            sent.append(doc["id"])
            infos.append(pub.sample(f"{prefix}/plant-a/line-3/cam-01/sample", doc, images[i % 4]))
        for info in infos:
            info.wait_for_publish(30)
    finally:
        pub.close()
    return sent


@pytest.mark.parametrize("full", ["images_and_index", "index_only"])
def test_a_full_disk_holds_messages_back_and_recovers_when_space_returns(
    full: str,
    tmp_path: Path,
    mosquitto: Mosquitto,
    unique_prefix: str,
    small_tmpfs: Callable[[Path, str], Path],
) -> None:
    col = CollectorProcess(tmp_path / "c", mosquitto.port, unique_prefix, client_id=f"col-full-{full}")
    disk = small_tmpfs(tmp_path / "disk", "2m")
    doc = yaml.safe_load(col.config.read_text())
    if full == "images_and_index":
        col.root = disk / "store"
        doc["storage"]["root"] = str(col.root)
    else:
        doc["storage"]["index"] = str(disk / "index.db")
    col.config.write_text(yaml.safe_dump(doc))
    col.start()
    try:
        filler = fill(disk, leave=150_000 if full == "images_and_index" else 8_000)
        sent = _send(mosquitto.port, unique_prefix, 40)  # ~800 KB of images, or 40 index rows
        wait_until(lambda: "collector_disk_full" in col.output, 30, lambda: col.output[-3000:])
        time.sleep(1.0)
        assert col.proc is not None and col.proc.poll() is None, col.output[-3000:]
        stored = _ids(col, disk, full)
        assert len(stored) < 40
        os.kill(col.proc.pid, signal.SIGHUP)
        wait_until(lambda: "disk_full" in _states(col), 10, lambda: col.output[-3000:])
        filler.unlink()
        wait_until(lambda: len(_ids(col, disk, full)) >= 40, 90, lambda: col.output[-3000:])
        assert "collector_disk_recovered" in col.output
        ids = _ids(col, disk, full)
        assert sorted(ids) == sorted(sent)
        assert len(list(col.root.glob("*/*/unlabeled/*/*.jpg"))) == 40
        assert "Traceback" not in col.output
        assert col.stop() == 0
    finally:
        col.kill()


def _ids(col: CollectorProcess, disk: Path, full: str) -> list[str]:
    if full == "images_and_index":
        return col.ids()
    import sqlite3

    with sqlite3.connect(disk / "index.db", timeout=10) as db:
        return [r[0] for r in db.execute("SELECT id FROM samples")]


def test_a_collector_started_on_a_full_disk_waits_for_space(
    tmp_path: Path, mosquitto: Mosquitto, unique_prefix: str, small_tmpfs: Callable[[Path, str], Path]
) -> None:
    col = CollectorProcess(tmp_path / "c", mosquitto.port, unique_prefix, client_id="col-full-start")
    disk = small_tmpfs(tmp_path / "disk", "1m")
    col.root = disk / "store"
    doc = yaml.safe_load(col.config.read_text())
    doc["storage"]["root"] = str(col.root)
    col.config.write_text(yaml.safe_dump(doc))
    col.start()
    assert col.stop() == 0  # the index exists; now the disk fills up while the collector is down
    filler = fill(disk, leave=0)
    sent = _send(mosquitto.port, unique_prefix, 5)  # held for the collector's session by the broker
    col.start_process()
    try:
        wait_until(lambda: "collector_disk_full" in col.output, 30, lambda: col.output[-3000:])
        time.sleep(1.0)
        assert col.proc is not None and col.proc.poll() is None, col.output[-3000:]
        assert "corrupt" not in col.output.lower()
        filler.unlink()
        wait_until(lambda: len(col.ids()) >= 5, 60, lambda: col.output[-3000:])
        assert sorted(col.ids()) == sorted(sent)
        assert col.stop() == 0
    finally:
        col.kill()
