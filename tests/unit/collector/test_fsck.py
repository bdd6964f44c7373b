"""``collector fsck`` finds files without rows, rows without files, bad sizes, leftovers; --repair fixes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from agent.collector import fsck
from agent.collector.commands import fsck as fsck_command
from tests.unit.collector.conftest import Parts
from tests.unit.collector.samples import jpeg, meta, v5


def _age(path: Path, seconds: float = 3600) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def _broken_store(parts: Parts) -> dict[str, str]:
    """Four samples stored, then: one file removed, one truncated, one orphan image, one temp file."""
    docs = []
    for seed in range(4):
        data = jpeg(seed=seed)
        docs.append(meta(data))
        parts.ingest.process([v5(docs[-1], data)])
    paths = {d["id"]: (parts.index.sample(d["id"]) or {})["path"] for d in docs}
    ids = list(paths)
    root = parts.cfg.root
    (root / paths[ids[0]]).unlink()
    (root / paths[ids[1]]).write_bytes(b"\xff\xd8\xff")
    orphan = root / "demo-defects/1.0.0/unlabeled/ok/01ORPHAN0000000000000000000.jpg"
    orphan.write_bytes(jpeg(seed=9))
    (root / "demo-defects/1.0.0/unlabeled/ok/.x.jpg.tmp").write_bytes(b"half")
    (root / "quarantine/20260101").mkdir(parents=True)
    (root / "quarantine/20260101/lost.bin").write_bytes(b"?")
    for path in root.rglob("*"):
        if path.is_file():
            _age(path)
    return {"missing": ids[0], "size": ids[1], "fine": ids[2]}


def test_fsck_reports_every_kind_of_mismatch(parts: Parts) -> None:
    which = _broken_store(parts)
    report = fsck.check(parts.index, parts.cfg.root, parts.cfg.index_path)
    assert report.counts() == {"orphan": 1, "missing": 1, "size": 1, "unindexed_quarantine": 1, "temp": 1}
    by_kind = {f.kind: f for f in report.findings}
    assert by_kind["missing"].sample_id == which["missing"] and by_kind["size"].sample_id == which["size"]


def test_fsck_repair_leaves_a_consistent_store_and_loses_no_metadata(parts: Parts) -> None:
    which = _broken_store(parts)
    report = fsck.check(parts.index, parts.cfg.root, parts.cfg.index_path)
    fsck.repair(report, parts.index, parts.storage)
    assert report.repaired == 5
    for path in parts.cfg.root.rglob("*"):
        if path.is_file():
            _age(path)
    again = fsck.check(parts.index, parts.cfg.root, parts.cfg.index_path)
    assert again.findings == [], [f.line() for f in again.findings]
    assert parts.index.sample(which["missing"]) is None and parts.index.sample(which["fine"]) is not None
    kept = json.loads((parts.cfg.root / f"quarantine/fsck/{which['missing']}.json").read_text())
    assert kept["row"]["id"] == which["missing"] and "meta" in kept["row"]
    assert any(action == "missing" for action, _l, _p in parts.index.history(which["missing"]))


def test_files_of_a_batch_in_flight_are_not_reported(parts: Parts) -> None:
    (parts.cfg.root / "m").mkdir()
    (parts.cfg.root / "m/new.jpg").write_bytes(b"x")  # written a moment ago: its rows may follow
    assert fsck.check(parts.index, parts.cfg.root, parts.cfg.index_path).findings == []


def test_the_command_exits_1_on_problems_and_0_once_repaired(
    parts: Parts, capsys: pytest.CaptureFixture[str]
) -> None:
    _broken_store(parts)
    assert fsck_command(parts.cfg, repair=False, as_json=False) == 1
    out = capsys.readouterr().out
    assert "1 orphan, 1 missing, 1 size, 1 unindexed_quarantine, 1 temp" in out
    assert fsck_command(parts.cfg, repair=True, as_json=True) == 0
    assert json.loads(capsys.readouterr().out)["repaired"] == 5
