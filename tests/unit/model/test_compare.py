"""``model compare`` and the gate on real (tiny) ONNX models whose mistakes are known in advance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.cli import main
from agent.model.compare import mcnemar_exact, paired_bootstrap
from agent.model.gate import GateError, verify_gate_report
from tests.unit.model.evalsets import threshold_classifier, two_lines
from tests.unit.model.packages import DEMO


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    champion = threshold_classifier(tmp_path / "champion", 0.55)
    challenger = threshold_classifier(tmp_path / "challenger", 0.45)
    return champion, challenger, two_lines(tmp_path / "data")


def gate_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    return path


def compare(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    rc = main(["model", "compare", *args, "--json", "--no-progress"])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if out.out.strip() else {}), out.err


def test_a_challenger_better_on_average_but_worse_on_one_line_is_caught_by_the_per_line_floor(
    setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    champion, challenger, data = setup
    gate = gate_file(
        tmp_path, "max_accuracy_drop: 0.0\nmin_recall: {defect: 0.95}\nper_line: {min_accuracy: 0.8}\n"
    )
    report_path = tmp_path / "report.json"
    rc, report, _ = compare(
        [str(champion), str(challenger), "--data", str(data), "--gate", str(gate), "--out", str(report_path)],
        capsys,
    )
    assert rc == 1 and report["passed"] is False
    assert (
        report["champion_figures"]["accuracy"] == 0.625 and report["challenger_figures"]["accuracy"] == 0.875
    )
    assert report["paired"]["accuracy_diff"] == 0.25
    assert report["paired"]["mcnemar"] == {
        "champion_only": 10,
        "challenger_only": 30,
        "p_value": pytest.approx(0.0022, abs=1e-4),
    }
    lo, hi = report["paired"]["accuracy_diff_ci95"]
    assert 0 < lo < 0.25 < hi
    assert report["per_line"]["a"]["accuracy_diff"] == pytest.approx(-1 / 3, abs=1e-4)
    assert [c["name"] for c in report["gate"]["failed"]] == ["line[a].accuracy"]
    assert report["challenger"]["sha256"] != report["champion"]["sha256"]
    assert json.loads(report_path.read_text())["passed"] is False
    with pytest.raises(GateError, match=r"did not pass: line\[a\].accuracy"):
        verify_gate_report(report_path, challenger)


def test_a_gate_met_exits_0_and_its_report_verifies_only_for_that_package(
    setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    champion, challenger, data = setup
    gate = gate_file(tmp_path, "max_accuracy_drop: 0.0\nmin_recall: {defect: 0.95}\nmax_p99_ms: 1000\n")
    out = tmp_path / "report.json"
    rc, report, _ = compare(
        [str(champion), str(challenger), "--data", str(data), "--gate", str(gate), "--out", str(out)], capsys
    )
    assert rc == 0 and report["passed"] is True and report["gate"]["failed"] == []
    assert verify_gate_report(out, challenger)["passed"] is True
    with pytest.raises(GateError, match="made for another package"):
        verify_gate_report(out, champion)
    manifest = challenger / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("budget_ms: 100", "budget_ms: 90"))
    with pytest.raises(GateError, match="made for another package"):
        verify_gate_report(out, challenger)  # edited after the gate


def test_every_failed_criterion_is_listed(
    setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    champion, challenger, data = setup
    # Swapped: the worse model is the challenger; it fails the drop, the defect recall and the latency.
    gate = gate_file(
        tmp_path,
        "max_accuracy_drop: 0.01\nmin_recall: {defect: 0.95}\nmax_p99_ms: 0.000001\nmin_f1: {ok: 0.1}\n",
    )
    rc = main(
        [
            "model",
            "compare",
            str(challenger),
            str(champion),
            "--data",
            str(data),
            "--gate",
            str(gate),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAIL accuracy_drop: 0.25 (needs <= 0.01)" in out
    assert "FAIL recall.defect:" in out and "FAIL p99_ms:" in out and "f1.ok" not in out
    assert out.strip().endswith("FAIL: 3 gate criteria not met")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("min_recal: {defect: 0.9}\n", "gate.yaml:1: min_recal: unknown key"),
        ("per_line: {min_acuracy: 0.9}\n", "per_line.min_acuracy: unknown key"),
        ("min_recall: {defect: 1.5}\n", "min_recall.defect: must be between 0 and 1"),
        ("max_p99_ms: fast\n", "max_p99_ms"),
    ],
)
def test_a_gate_file_with_unknown_keys_or_bad_values_is_refused_before_any_model_runs(
    setup: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    message: str,
) -> None:
    champion, challenger, data = setup
    rc, _, err = compare(
        [str(champion), str(challenger), "--data", str(data), "--gate", str(gate_file(tmp_path, text))],
        capsys,
    )
    assert rc == 2 and message in err


def test_packages_with_different_label_sets_are_refused_unless_mapped(
    setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    champion, _, data = setup
    other = threshold_classifier(tmp_path / "other", 0.45, labels=("good", "defect"))
    gate = gate_file(tmp_path, "min_accuracy: 0.5\n")
    rc, _, err = compare([str(champion), str(other), "--data", str(data), "--gate", str(gate)], capsys)
    assert rc == 2 and "different label sets (challenger lacks: ok; challenger adds: good)" in err
    rc, report, _ = compare(
        [str(champion), str(other), "--data", str(data), "--gate", str(gate), "--label-map", "good=ok"],
        capsys,
    )
    assert rc == 0 and report["label_map"] == {"good": "ok"}
    assert report["challenger_figures"]["accuracy"] == 0.875


def test_the_demo_package_against_itself_has_no_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cv2
    import numpy as np

    from agent.synthetic import LABELS, render_part

    for c, label in enumerate(LABELS):
        (tmp_path / "d" / label).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(
                str(tmp_path / "d" / label / f"{i}.png"),
                render_part(np.random.default_rng([3, c, i]), label, 160, 120),
            )
    gate = gate_file(tmp_path, "max_accuracy_drop: 0.0\n")
    rc, report, _ = compare(
        [str(DEMO), str(DEMO), "--data", str(tmp_path / "d"), "--gate", str(gate), "--runtime", "tflite"],
        capsys,
    )
    assert rc == 0
    assert report["paired"]["accuracy_diff"] == 0.0 and report["paired"]["mcnemar"]["p_value"] == 1.0
    assert report["champion"]["sha256"] == report["challenger"]["sha256"]


def test_mcnemar_and_bootstrap_against_known_values() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 9) == pytest.approx(0.021484375)  # 2 * (1 + 10) / 1024
    same = np.ones(50)
    assert paired_bootstrap(same, same) == (0.0, 0.0)
