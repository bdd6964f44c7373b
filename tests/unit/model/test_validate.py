"""Bad packages: each refused by ``validate`` (a failed check with its reason) and by ``load_model``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.config.schema import ModelConfig
from agent.errors import ModelError
from agent.model.loaded import load_model
from agent.model.pack import pack
from agent.model.validate import ValidationReport, validate_package
from tests.support.models import slow_classifier
from tests.unit.model.packages import FIXTURES, golden_dir, manifest_for_pack, sha256, write_package


def failed(report: ValidationReport) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if not c.ok}


def refused_by_load(root: Path, match: str) -> None:
    with pytest.raises(ModelError, match=match) as info:
        load_model(str(root), ModelConfig(path=str(root), warmup_runs=1))
    assert "\n" not in str(info.value)


def test_good_package_passes_every_check(tmp_path: Path) -> None:
    report = validate_package(write_package(tmp_path / "p", "cls_i8.tflite"), runs=5)
    assert report.ok, failed(report)
    names = [c.name for c in report.checks]
    assert names == [
        "manifest",
        "tflite: load",
        "tflite: tensors",
        "tflite: run",
        "tflite: golden",
        "tflite: latency",
    ]
    assert report.to_json()["latency_ms"].keys() == {"p50", "p99"}


def _truncate(root: Path, model: str) -> None:
    data = (root / model).read_bytes()
    (root / model).write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize(
    ("model", "check"), [("cls_u8.tflite", "tflite: load"), ("cls_dyn.onnx", "onnx: load")]
)
def test_truncated_model_file(tmp_path: Path, model: str, check: str) -> None:
    root = write_package(tmp_path / "p", model)
    _truncate(root, model)
    doc = (root / "manifest.yaml").read_text().replace(sha256(FIXTURES / model), sha256(root / model))
    (root / "manifest.yaml").write_text(doc)
    assert "not a loadable" in failed(validate_package(root, runs=1))[check]
    refused_by_load(root, "is not a loadable")


def test_a_text_file_is_not_a_model(tmp_path: Path) -> None:
    root = write_package(tmp_path / "p", "cls_dyn.onnx")
    (root / "cls_dyn.onnx").write_text("hello")
    (root / "manifest.yaml").write_text(
        (root / "manifest.yaml")
        .read_text()
        .replace(sha256(FIXTURES / "cls_dyn.onnx"), sha256(root / "cls_dyn.onnx"))
    )
    assert "not a loadable ONNX model" in failed(validate_package(root, runs=1))["onnx: load"]
    refused_by_load(root, "not a loadable ONNX model")


def test_wrong_sha256(tmp_path: Path) -> None:
    root = write_package(tmp_path / "p", "cls_u8.tflite", sha256="ab" * 32)
    assert "sha256 mismatch" in failed(validate_package(root, runs=1))["tflite: load"]
    refused_by_load(root, "sha256 mismatch for cls_u8.tflite")


def test_label_count_that_does_not_match_the_output(tmp_path: Path) -> None:
    root = write_package(tmp_path / "p", "cls_u8.tflite", labels=["ok", "scratch"])
    assert (
        "3 output classes but the manifest lists 2 labels"
        in failed(validate_package(root, runs=1))["tflite: load"]
    )
    refused_by_load(root, "3 output classes but the manifest lists 2 labels")


def test_nan_outputs(tmp_path: Path) -> None:
    root = write_package(tmp_path / "p", "nan.onnx")
    assert failed(validate_package(root, runs=1)) == {"onnx: run": "model output contains NaN or Inf"}
    refused_by_load(root, "NaN or Inf")  # warm-up frames run through postprocessing too


def test_wrong_layout(tmp_path: Path) -> None:
    root = write_package(tmp_path / "p", "cls_u8.tflite", input={"width": 32, "height": 32, "layout": "NCHW"})
    assert "does not match the model's input" in failed(validate_package(root, runs=1))["tflite: load"]
    refused_by_load(
        root, r"manifest input NCHW \(1, 3, 32, 32\) does not match the model's input \(1, 32, 32, 3\)"
    )


def test_ten_times_over_budget_fails_the_latency_check(tmp_path: Path) -> None:
    model = slow_classifier(tmp_path / "slow.onnx", 2000)  # far over budget on any CPU
    doc = manifest_for_pack("cls_nhwc.onnx", budget_ms=0.2, name="slow")
    root = pack(doc, [model], tmp_path / "p").root
    report = validate_package(root, runs=5)
    detail = failed(report)["onnx: latency"]
    assert "p99 is over budget" in detail and "budget 0.2 ms" in detail
    assert report.latency_ms["onnx"]["p99"] > 2.0  # at least 10x the budget


def test_manifest_pointing_outside_its_directory(tmp_path: Path) -> None:
    outside = write_package(tmp_path / "elsewhere", "cls_u8.tflite")
    root = write_package(tmp_path / "p", "cls_u8.tflite", file=f"../{outside.name}/cls_u8.tflite")
    assert "points outside the package directory" in failed(validate_package(root, runs=1))["tflite: load"]
    refused_by_load(root, "points outside the package directory")
    root2 = write_package(tmp_path / "p2", "cls_u8.tflite", golden="../../etc")
    assert "golden '../../etc' points outside" in failed(validate_package(root2, runs=1))["manifest"]


def test_golden_mismatch_states_the_tolerance(tmp_path: Path) -> None:
    root = pack(
        manifest_for_pack("cls_u8.tflite"),
        [FIXTURES / "cls_u8.tflite"],
        tmp_path / "p",
        golden=golden_dir(tmp_path / "g"),
        tolerance=0.05,
    ).root
    expected_path = root / "golden" / "expected.json"
    expected = json.loads(expected_path.read_text())
    expected["images"]["white.png"]["label"] = "dent"
    expected["images"]["noise0.png"]["scores"]["tflite"][0] += 0.2
    expected_path.write_text(json.dumps(expected))
    report = validate_package(root, runs=1)
    detail = failed(report)["tflite: golden"]
    assert "2 golden failure(s) (tolerance 0.05)" in detail
    assert "white.png: label" in detail and "noise0.png: scores differ by 0.2" in detail
    assert (
        "file(s) not covered" not in str(failed(report))
        and "does not match its CHECKSUMS" in failed(report)["checksums"]
    )


def test_unknown_runtime_request_and_missing_package(tmp_path: Path) -> None:
    root = write_package(tmp_path / "p", "cls_u8.tflite")
    assert "has no onnx file" in failed(validate_package(root, runtime="onnx"))["runtime"]
    assert "not a package directory" in failed(validate_package(tmp_path / "nope"))["manifest"]


def test_validate_runtime_auto_checks_only_the_preferred_runtime(tmp_path: Path) -> None:
    root = pack(
        manifest_for_pack("cls_u8.tflite"),
        [FIXTURES / "cls_u8.tflite", FIXTURES / "cls_nhwc.onnx"],
        tmp_path / "p",
    ).root
    report: Any = validate_package(root, runtime="auto", runs=2)
    assert report.ok and report.model["runtimes"] == ["tflite"]
