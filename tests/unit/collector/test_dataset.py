"""Labeling keeps history; exports are stratified, deterministic, and never put an id in two splits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from agent.collector.dataset import Split, assign_splits, dataset_stats, export, label_samples
from agent.collector.report import parse_duration, stats_report
from agent.collector.review.queries import audit
from agent.errors import ConfigError
from tests.unit.collector.conftest import Parts
from tests.unit.collector.samples import jpeg, meta, v5


def collect(parts: Parts, n: int, label: str = "ok") -> list[str]:
    msgs, ids = [], []
    for i in range(n):
        data = jpeg(seed=i)
        doc = meta(data, label=label)
        ids.append(doc["id"])
        msgs.append(v5(doc, data, mid=i))
    parts.ingest.process(msgs)
    return ids


def label(parts: Parts, ids: list[str], name: str, *, adjudicate: bool = False) -> list[str]:
    return label_samples(parts.review, ids, name, reviewer="cli:test", adjudicate=adjudicate)


def test_label_moves_the_file_and_keeps_history(parts: Parts) -> None:
    (sample_id,) = collect(parts, 1)
    assert label(parts, [sample_id], "scratch") == []
    assert label(parts, [sample_id, "NOPE"], "ok") == [
        f"{sample_id}: already labeled scratch; only an admin can change it",
        "NOPE: no such sample",
    ]
    assert label(parts, [sample_id], "ok", adjudicate=True) == []
    row = parts.index.sample(sample_id)
    assert row is not None and row["label"] == "ok" and row["predicted"] == "ok"
    assert (parts.cfg.root / row["path"]).is_file()
    assert row["path"] == f"demo-defects/1.0.0/labeled/ok/{sample_id}.jpg"
    assert [h[0] for h in parts.index.history(sample_id)] == ["received", "labeled", "labeled"]
    assert not any((parts.cfg.root / "demo-defects/1.0.0/unlabeled/ok").iterdir())
    trail = [(a["actor"], a["action"], a["label"], a["previous"]) for a in audit(parts.index, sample_id)]
    assert trail == [("cli:test", "vote", "scratch", None), ("consensus", "labeled", "scratch", None),
                     ("cli:test", "adjudicated", "ok", "scratch")]  # fmt: skip


def test_a_label_the_model_does_not_have_is_refused(parts: Parts) -> None:
    (sample_id,) = collect(parts, 1)
    assert label(parts, [sample_id], "dent") == [
        f"{sample_id}: 'dent' is not a label of demo-defects (ok, scratch)"
    ]
    with pytest.raises(ConfigError):
        label(parts, [], "../x")


def test_splits_are_stratified_deterministic_and_disjoint() -> None:
    rows = [(f"A{i:03d}", "ok", "") for i in range(100)] + [(f"B{i:03d}", "scratch", "") for i in range(20)]
    split = Split.parse("70/15/15")
    first = assign_splits(rows, split, seed=3)
    assert first == assign_splits(list(reversed(rows)), split, seed=3)
    assert first != assign_splits(rows, split, seed=4)
    counts: dict[tuple[str, str], int] = {}
    for sample_id, label, _ in rows:
        counts[(label, first[sample_id])] = counts.get((label, first[sample_id]), 0) + 1
    assert counts == {("ok", "train"): 70, ("ok", "val"): 15, ("ok", "test"): 15,
                      ("scratch", "train"): 14, ("scratch", "val"): 3, ("scratch", "test"): 3}  # fmt: skip


@pytest.mark.parametrize("text", ["70/30/10", "a/b", "100", "50/-10/60"])
def test_bad_split_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--split"):
        Split.parse(text)


def test_export_imagefolder_and_csv(parts: Parts, tmp_path: Path) -> None:
    ok = collect(parts, 10)
    bad = collect(parts, 10, label="scratch")
    assert label(parts, ok, "ok") == [] and label(parts, bad, "scratch") == []
    out = tmp_path / "folder"
    summary = export(parts.review, out, fmt="imagefolder", split=Split.parse("80/20"), seed=0)
    assert summary["counts"] == {"train/ok": 8, "train/scratch": 8, "val/ok": 2, "val/scratch": 2}
    assert len(list(out.glob("*/*/*.jpg"))) == 20
    table = tmp_path / "table"
    export(parts.review, table, fmt="csv", split=Split.parse("70/15/15"), seed=0)
    with (table / "dataset.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20 and len({r["id"] for r in rows}) == 20
    assert all((table / r["path"]).is_file() for r in rows)
    assert json.loads((table / "export.json").read_text())["samples"] == 20


def test_dataset_and_collector_stats(parts: Parts) -> None:
    ids = collect(parts, 3)
    label(parts, ids[:1], "scratch")
    stats = {(r["state"], r["label"]): r["count"] for r in dataset_stats(parts.index)}
    assert stats == {("labeled", "scratch"): 1, ("unlabeled", "ok"): 2}
    report = stats_report(parts.index, parse_duration("1h"), now=1767225600.0 + 60)
    assert report["samples"][0]["count"] == 3 and report["samples"][0]["per_hour"] == 3.0
    with pytest.raises(ConfigError):
        parse_duration("soon")


def test_an_export_carries_where_each_frame_came_from_for_evaluation(parts: Parts, tmp_path: Path) -> None:
    from agent.model.evaldata import read_eval_set

    label(parts, collect(parts, 5), "ok")
    out = tmp_path / "folder"
    export(parts.review, out, fmt="imagefolder", split=Split.parse("60/40"), seed=0)
    with (out / "metadata.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 and all(r["site"] and r["line"] and r["device"] for r in rows)
    data = read_eval_set(out, "val")
    assert len(data.items) == 2
    assert all(item.meta["line"] == rows[0]["line"] and item.meta["device"] for item in data.items)


def test_dataset_reopen_command_sends_samples_back_and_reports_each_problem(
    parts: Parts, tmp_path: Path
) -> None:
    from tests.support.agentproc import run_agent

    first, second = collect(parts, 2)
    assert label(parts, [first], "scratch") == []
    config = str(tmp_path / "collector.yaml")
    args = ["dataset", "reopen", first, second, "NOPE", "--reason", "guide v2", "--admin", "qa-lead"]
    done = run_agent([*args, "--config", config])
    assert done.returncode == 1
    assert done.stdout.strip() == "reopened 1 sample(s) for a new round (by qa-lead)"
    problems = done.stderr.strip().splitlines()
    assert problems == [
        f"inspection-agent: dataset reopen: {second}: already open for review (round 1)",
        "inspection-agent: dataset reopen: NOPE: no such sample",
    ]
    row = parts.index.sample(first)
    assert row is not None and row["label"] is None
    assert (
        row["path"] == f"demo-defects/1.0.0/unlabeled/ok/{first}.jpg"
        and (parts.cfg.root / row["path"]).is_file()
    )
    assert [h[0] for h in parts.index.history(first)] == ["received", "labeled", "reopened"]
    last = audit(parts.index, first)[-1]
    assert (last["actor"], last["action"], last["previous"], last["detail"]) == (
        "qa-lead",
        "reopened",
        "scratch",
        "guide v2",
    )
