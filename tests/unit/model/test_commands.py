"""``inspection-agent model …`` end to end through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agent.cli import main
from tests.support.paths import DEMO_MODEL
from tests.unit.model.packages import FIXTURES, golden_dir, write_package


def test_pack_sign_and_validate_with_a_required_signature(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = golden_dir(tmp_path / "golden")
    out = tmp_path / "pkg"
    rc = main([
        "model", "pack", str(FIXTURES / "cls_u8.tflite"), str(FIXTURES / "cls_nhwc.onnx"),
        "--name", "demo", "--version", "2.0.0", "--task", "classification", "--labels", "ok,scratch,dent",
        "--input-size", "32x32", "--color", "RGB", "--layout", "NHWC", "--resize", "stretch",
        "--scale", "0.00392156862745098", "--mean", "0", "--std", "1", "--budget-ms", "500",
        "--golden", str(golden), "--out", str(out), "--tar",
    ])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert "packed" in capsys.readouterr().out
    manifest = yaml.safe_load((out / "manifest.yaml").read_text())
    assert manifest["file"] == {"tflite": "cls_u8.tflite", "onnx": "cls_nhwc.onnx"}
    assert (tmp_path / "pkg.tar.gz").is_file()

    assert main(["model", "keygen", "--out", str(tmp_path / "release")]) == 0
    pub = str(tmp_path / "release.pub")
    assert (
        main(["model", "validate", str(out), "--runs", "3", "--require-signature", "--trusted-key", pub]) == 1
    )
    assert "is not signed" in capsys.readouterr().out
    assert main(["model", "sign", str(out), "--key", str(tmp_path / "release.key"), "--tar"]) == 0
    capsys.readouterr()
    rc = main(["model", "validate", str(tmp_path / "pkg.tar.gz"), "--json", "--runs", "3",
               "--require-signature", "--trusted-key", pub])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["ok"], report
    assert {c["name"] for c in report["checks"]} >= {
        "signature",
        "tflite: golden",
        "onnx: golden",
        "onnx: latency",
    }
    assert set(report["latency_ms"]) == {"p50", "p99"} and report["model"]["runtimes"] == ["tflite", "onnx"]


def test_validate_reads_signature_settings_from_the_device_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_package(tmp_path / "p", "cls_u8.tflite")
    main(["model", "keygen", "--out", str(tmp_path / "k")])
    capsys.readouterr()
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(
        "device: {id: cam-01, site: s, line: l}\n"
        'camera: {source: "synthetic:"}\n'
        f"model: {{path: {root}, require_signature: true, trusted_keys: [k.pub]}}\n"
    )
    rc = main(["model", "validate", str(root), "--config", str(cfg), "--json", "--runs", "1"])
    out = capsys.readouterr()
    assert rc == 1, out.err
    report = json.loads(out.out)
    assert not report["ok"]
    assert any(c["name"] == "signature" and "is not signed" in c["detail"] for c in report["checks"])


def test_validate_failure_lists_every_reason_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_package(tmp_path / "p", "cls_u8.tflite", labels=["ok", "scratch"], budget_ms=0.000001)
    assert main(["model", "validate", str(root), "--runs", "1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  tflite: load: the model has 3 output classes but the manifest lists 2 labels" in out
    assert out.strip().endswith(f"FAIL: {root}")


def test_info_prints_manifest_and_tensors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_package(tmp_path / "p", "cls_i8.tflite")
    assert main(["model", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "name: cls-i8" in out and "int8 scale=0.00392153 zero_point=-128" in out
    assert main(["model", "info", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tensors"]["tflite"]["outputs"][0]["quantization"] == {
        "scale": 0.00390625,
        "zero_point": -128,
    }


def test_info_summarizes_the_reference_quantiles_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "info", str(DEMO_MODEL)]) == 0
    out = capsys.readouterr().out
    quantiles = yaml.safe_load((DEMO_MODEL / "manifest.yaml").read_text())["reference"]["top1_confidence"]
    assert len(quantiles) == 256
    assert f"top1_confidence: '256 values: min {min(quantiles):g}, " in out
    assert len(out.splitlines()) < 100 and "labels: [ok, scratch, spot, crack, hole]" in out
    assert main(["model", "info", str(DEMO_MODEL), "--json"]) == 0  # machines still get it all
    manifest = yaml.safe_load(json.loads(capsys.readouterr().out)["manifest"])
    assert manifest["reference"]["top1_confidence"] == quantiles


def test_bad_usage_and_broken_packages_get_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["model", "pack", "--out", str(tmp_path / "x")]) == 2
    assert "needs MODEL_FILE" in capsys.readouterr().err
    assert main(["model", "info", str(tmp_path / "missing")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert (
        main(
            [
                "model",
                "pack",
                str(FIXTURES / "cls_u8.tflite"),
                "--out",
                str(tmp_path / "y"),
                "--input-size",
                "32",
            ]
        )
        == 2
    )
    assert "--input-size must look like 224x224" in capsys.readouterr().err
