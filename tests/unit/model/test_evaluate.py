"""``inspection-agent model evaluate`` on real models: the demo package, fixtures, tiny threshold models."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.cli import main
from agent.metrics import Outcome, classification_report, wilson
from agent.model.evaldata import read_eval_set
from agent.model.evaluate import evaluate
from agent.synthetic import LABELS, render_part
from tests.unit.model.evalsets import threshold_classifier, two_lines
from tests.unit.model.packages import DEMO, write_package


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Export layout: test/{label}/*.jpg, 4 renders per class, metadata on two lines, one corrupt file."""
    root = tmp_path_factory.mktemp("demo-data")
    lines = ["line,id,site,device,path"]
    for c, label in enumerate(LABELS):
        (root / "test" / label).mkdir(parents=True)
        for i in range(4):
            image = render_part(np.random.default_rng([9, c, i]), label, 320, 240)
            cv2.imwrite(str(root / "test" / label / f"{label}{i}.jpg"), image)
            lines.append(
                f"{'east' if i % 2 else 'west'},{label}{i},plant,cam-{i % 2},test/{label}/{label}{i}.jpg"
            )
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    (root / "test" / "ok" / "torn.jpg").write_bytes(b"\xff\xd8 half a jpeg")
    return root


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    rc = main([*args, "--json", "--no-progress"])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if out.out.strip() else {"stderr": out.err})


def test_the_demo_package_is_evaluated_on_both_runtimes_with_per_line_figures_and_a_confusion_picture(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "cm.png"
    rc, report = run_json(
        ["model", "evaluate", str(DEMO), "--data", str(demo_data), "--confusion-png", str(png)], capsys
    )
    assert rc == 0
    assert report["data"]["evaluated"] == 20 and report["data"]["skipped"] == 1
    assert report["data"]["skipped_files"][0]["path"].endswith("torn.jpg")
    assert set(report["runtimes"]) == {"tflite", "onnx"}
    assert report["runtimes"]["tflite"]["precision"] == report["runtimes"]["onnx"]["precision"] == "int8"
    assert report["int8_gap"] is None  # two int8 files: no float to compare with
    assert report["accuracy"] >= 0.8 and report["defect_recall"] >= 0.8
    assert sum(map(sum, report["confusion"]["matrix"])) == 20
    assert set(report["per_class"]) == set(LABELS)
    assert set(report["by"]["line"]) == {"east", "west"} and report["by"]["line"]["east"]["samples"] == 10
    assert set(report["by"]["device"]) == {"cam-0", "cam-1"} and "lighting" in report["by"]
    assert report["package"]["sha256"] and report["package"]["files"]["tflite"]
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] > 300


def test_one_runtime_on_request_and_a_readable_summary(
    demo_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["model", "evaluate", str(DEMO), "--data", str(demo_data), "--runtime", "onnx", "--no-progress"])
        == 0
    )
    out = capsys.readouterr().out
    assert "(onnx, int8)" in out and "line east:" in out and "skipped" in out and "torn.jpg" in out


def test_a_float_and_an_int8_file_give_the_int8_gap(tmp_path: Path) -> None:
    root = write_package(tmp_path / "pkg", "cls_i8.tflite")
    (root / "cls_nhwc.onnx").write_bytes(
        (Path(__file__).parents[2] / "fixtures/models/cls_nhwc.onnx").read_bytes()
    )
    import hashlib

    import yaml

    doc = yaml.safe_load((root / "manifest.yaml").read_text())
    doc["file"] = {"tflite": "cls_i8.tflite", "onnx": "cls_nhwc.onnx"}
    doc["sha256"] = {k: hashlib.sha256((root / v).read_bytes()).hexdigest() for k, v in doc["file"].items()}
    (root / "manifest.yaml").write_text(yaml.safe_dump(doc))
    data = tmp_path / "data"
    for i, label in enumerate(["ok", "scratch", "dent"] * 3):
        (data / label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(data / label / f"{i}.png"), np.full((32, 32, 3), 30 * i, np.uint8))
    report = evaluate(root, read_eval_set(data), progress=False)
    gap = report["int8_gap"]
    assert gap["float"] == "onnx" and gap["int8"] == "tflite"
    expected = report["runtimes"]["onnx"]["accuracy"] - report["runtimes"]["tflite"]["accuracy"]
    assert gap["accuracy"] == pytest.approx(expected, abs=1e-4)


def test_a_class_the_model_does_not_know_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = threshold_classifier(tmp_path / "m", 0.5)
    data = two_lines(tmp_path / "data")
    (data / "test" / "dent").mkdir()
    cv2.imwrite(str(data / "test" / "dent" / "x.png"), np.zeros((8, 8, 3), np.uint8))
    assert main(["model", "evaluate", str(pkg), "--data", str(data), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "class 'dent' is not a label of threshold" in err and err.count("\n") == 1
    # ...and mapped onto a known label it is evaluated
    assert (
        main(
            [
                "model",
                "evaluate",
                str(pkg),
                "--data",
                str(data),
                "--label-map",
                "dent=defect",
                "--no-progress",
            ]
        )
        == 0
    )


def test_an_empty_class_is_reported_not_measured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pkg = threshold_classifier(tmp_path / "m", 0.5)
    data = tmp_path / "data"
    (data / "ok").mkdir(parents=True)
    (data / "defect").mkdir()
    for i in range(3):
        cv2.imwrite(str(data / "ok" / f"{i}.png"), np.full((8, 8, 3), 20, np.uint8))
    rc, report = run_json(["model", "evaluate", str(pkg), "--data", str(data)], capsys)
    assert rc == 0
    assert report["data"]["empty_classes"] == ["defect"]
    assert report["per_class"]["defect"]["recall"] is None and report["defect_recall"] is None
    assert report["accuracy"] == 1.0


def test_a_folder_without_images_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = threshold_classifier(tmp_path / "m", 0.5)
    (tmp_path / "data" / "ok").mkdir(parents=True)
    assert main(["model", "evaluate", str(pkg), "--data", str(tmp_path / "data"), "--no-progress"]) == 2
    assert "no images under" in capsys.readouterr().err


def test_progress_prints_lines_when_not_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = threshold_classifier(tmp_path / "m", 0.5)
    assert main(["model", "evaluate", str(pkg), "--data", str(two_lines(tmp_path / "d"))]) == 0
    assert "80/80 done in" in capsys.readouterr().err


def test_report_figures_match_a_hand_count() -> None:
    outcomes = [Outcome("ok", "ok", False, False)] * 3 + [Outcome("scratch", "ok", True, False)]
    outcomes += [Outcome("scratch", "scratch", True, True)] * 2 + [Outcome("ok", "scratch", False, True)]
    r = classification_report(outcomes, ["ok", "scratch"])
    assert r["accuracy"] == round(5 / 7, 4)
    assert r["per_class"]["ok"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4}
    assert r["defect_recall"] == round(2 / 3, 4) and r["defect_precision"] == round(2 / 3, 4)
    assert r["confusion"]["matrix"] == [[3, 1], [1, 2]]


def test_wilson_interval_matches_published_values() -> None:
    lo, hi = wilson(81, 263)  # Wilson (1927) / Newcombe (1998) example: 0.2553-0.3662
    assert lo == pytest.approx(0.2553, abs=5e-4) and hi == pytest.approx(0.3662, abs=5e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(10, 10)[1] == pytest.approx(1.0) and wilson(10, 10)[0] > 0.69
