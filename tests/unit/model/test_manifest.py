"""Manifest errors name the file, line and key; a model package is refused with one reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ModelError
from agent.model.manifest import read_manifest

GOOD = """name: demo
version: 1.0.0
task: classification
file: m.tflite
sha256: {sha}
budget_ms: 20
labels: [ok, scratch]
input:
  width: 96
  height: 96
  color: GRAY
""".replace("{sha}", "ab" * 32)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_manifest_parses(tmp_path: Path) -> None:
    m = read_manifest(write(tmp_path, GOOD))
    assert m.input.channels == 1 and m.files() == {"tflite": ("m.tflite", "ab" * 32)}
    assert m.output.score_floor == 0.25


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("  color: GRAY", "  color: GREY"), r"manifest.yaml:11: input.color: must be one of"),
        (("budget_ms: 20", "budget_ms: fast"), r"manifest.yaml:6: budget_ms: must be a number"),
        (("budget_ms: 20", "budget_ms: 0"), r"manifest.yaml:6: budget_ms: must be greater than 0"),
        (
            ("task: classification", "task: classification\nlayers: 3"),
            r"manifest.yaml:4: layers: unknown key",
        ),
        (("labels: [ok, scratch]", "labels_file: labels.txt\nlabels: [ok]"), r"labels: give exactly one"),
        (
            ("  height: 96", "  height: 96\n  mean: [1, 2]"),
            r"manifest.yaml:11: input.mean: needs 1 or 1 values",
        ),
        (("file: m.tflite", "file: {tflite: m.tflite}"), r"sha256: file and sha256 must both"),
        (("version: 1.0.0\n", ""), r"manifest.yaml:1: version: missing required key"),
    ],
)
def test_manifest_errors_carry_file_line_and_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    with pytest.raises(ModelError, match=message):
        read_manifest(write(tmp_path, GOOD.replace(*change)))


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"manifest.yaml:\d+: malformed YAML"):
        read_manifest(write(tmp_path, GOOD + "input: [unclosed\n"))
