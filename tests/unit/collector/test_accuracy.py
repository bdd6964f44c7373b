"""Measured line accuracy from reviewed random samples: figures, stats, retained publication, alarm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.collector.accuracy import AccuracyPublisher, line_accuracy
from agent.collector.index import Index, SampleRow
from agent.config.observers import AccuracyConfig
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.unit.collector.conftest import write_config


def sample(
    i: int, line: str, predicted: str, reasons: tuple[str, ...] = ("random",), version: str = "1.0.0"
) -> SampleRow:
    return SampleRow(
        id=f"s{line}{i}{version}", ts=1_700_000_000_000 + i, device="cam-1", site="plant", line=line,
        model="demo", version=version, predicted=predicted, score=0.9, path=f"x/{i}.jpg", bytes=10,
        reasons=reasons, meta={},
    )  # fmt: skip


def fill(index: Index) -> None:
    """Line a: 40 reviewed random samples, 30 right (10 defects, 8 flagged). Line b: 10 of 10 right.
    Plus samples that must not count: unreviewed, and reviewed but picked by low_confidence."""
    rows, labels = [], {}
    for i in range(40):
        truth = "scratch" if i < 10 else "ok"
        said = (
            truth if i < 8 or i >= 18 else ("ok" if i < 10 else "scratch")
        )  # 2 defects missed, 8 ok called scratch
        rows.append(sample(i, "a", said))
        labels[rows[-1].id] = truth
    for i in range(10):
        rows.append(sample(100 + i, "b", "ok"))
        labels[rows[-1].id] = "ok"
    rows.append(sample(200, "a", "ok"))  # never reviewed
    rows.append(sample(201, "a", "ok", ("low_confidence",)))
    labels[rows[-1].id] = "scratch"  # reviewed, but a biased policy: excluded
    index.record(rows, [], [])
    for sample_id, label in labels.items():
        index.set_label(sample_id, label, "x", f"labeled/{label}/{sample_id}.jpg")


@pytest.fixture
def index(tmp_path: Path) -> Index:
    idx = Index(tmp_path / "store" / "index.db")
    fill(idx)
    return idx


def test_accuracy_and_defect_recall_per_line_with_wilson_intervals(index: Index) -> None:
    a, b = line_accuracy(index, AccuracyConfig(target=0.9))
    assert (a.line, a.reviewed, a.correct, a.accuracy) == ("a", 40, 30, 0.75)
    assert (a.defects, a.defects_flagged, a.defect_recall) == (10, 8, 0.8)
    assert a.accuracy_ci95 == pytest.approx((0.5980, 0.8581), abs=1e-3)
    assert a.below_target  # even the upper bound is below 0.9
    assert (b.line, b.reviewed, b.accuracy, b.defect_recall) == ("b", 10, 1.0, None)
    assert not b.below_target  # 10 of 10 right: the interval reaches 1


def test_versions_are_measured_separately(tmp_path: Path) -> None:
    idx = Index(tmp_path / "i.db")
    idx.record([sample(1, "a", "ok", version="2.0.0"), sample(2, "a", "ok")], [], [])
    idx.set_label("sa12.0.0", "ok", "x", "y")
    idx.set_label("sa21.0.0", "scratch", "x", "z")
    figures = {f.version: f.accuracy for f in line_accuracy(idx, AccuracyConfig())}
    assert figures == {"1.0.0": 0.0, "2.0.0": 1.0}


def test_collector_stats_shows_the_measured_accuracy(
    tmp_path: Path, index: Index, capsys: pytest.CaptureFixture[str]
) -> None:
    index.close()
    config = write_config(tmp_path, "accuracy: {target: 0.9}\n")
    assert main(["collector", "stats", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "demo 1.0.0: 40 reviewed, accuracy 0.750 (0.598-0.858), defect recall 0.800  BELOW TARGET" in out
    assert main(["collector", "stats", "--config", str(config), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [f["line"] for f in doc["accuracy"]] == ["a", "b"]


def test_a_bad_accuracy_target_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "accuracy: {target: 95}\n")
    assert main(["collector", "stats", "--config", str(config)]) == 2
    assert "accuracy.target: must be between 0 and 1" in capsys.readouterr().err


def test_figures_are_published_retained_per_line_and_the_alarm_is_raised_once(
    index: Index, mosquitto: Mosquitto, unique_prefix: str
) -> None:
    with Subscriber(mosquitto.port, f"{unique_prefix}/#") as client:
        publisher = AccuracyPublisher(
            AccuracyConfig(target=0.9),
            unique_prefix,
            index,
            lambda t, p, q, r: client.publish(t, p, qos=q, retain=r),
        )
        publisher.tick(now=1_800_000_000)
        publisher.tick(now=1_800_000_400)  # same state: no second alarm
        client.wait_for(5)
        alarms = [m for m in client.messages if m[0].endswith("/alarm")]
        assert len(alarms) == 1 and alarms[0][0] == f"{unique_prefix}/plant/_collector/accuracy/a/alarm"
        doc = json.loads(alarms[0][1])
        assert doc["state"] == "raised" and doc["figures"]["accuracy_ci95"][1] < 0.9
    # A subscriber arriving later gets the retained figures of each line.
    with Subscriber(mosquitto.port, f"{unique_prefix}/plant/_collector/accuracy/+") as late:
        got = {m[0]: json.loads(m[1]) for m in late.wait_for(2)}
    line_a = got[f"{unique_prefix}/plant/_collector/accuracy/a"]
    assert line_a["models"][0]["reviewed"] == 40 and line_a["target"] == 0.9
    assert f"{unique_prefix}/plant/_collector/accuracy/b" in got
