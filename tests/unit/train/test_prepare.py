"""Reading training data: every bad input the issue lists is refused or reported, never silently used."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import DataError
from agent.model.manifest import InputSpec
from agent.train.config import TrainConfig
from agent.train.prepare import Prepared, Request, prepare
from agent.train.summary import label_change
from agent.train.zoo import synthetic_folder

SPEC = InputSpec(width=24, height=24, color="GRAY")
FRAME = (48, 36)


def request(tmp_path: Path, *dirs: Path, **cfg: object) -> Request:
    config = TrainConfig(min_per_class=5, **cfg)  # type: ignore[arg-type]
    return Request(tuple(dirs), tmp_path / "base.keras", tmp_path / "out", "1.0.0", config)


def run(
    req: Request, spec: InputSpec = SPEC, base_labels: list[str] | None = None
) -> tuple[Prepared, list[str]]:
    said: list[str] = []
    return prepare(req, spec, base_labels, said.append), said


def test_two_classes_are_read_split_and_counted(tmp_path: Path) -> None:
    data = synthetic_folder(tmp_path / "d", ("ok", "hole"), 20, FRAME, seed=1)
    prepared, _ = run(request(tmp_path, data))
    counts = {s: sum(v.counts().values()) for s, v in prepared.splits.items()}
    assert sum(counts.values()) == 40 and all(counts.values())
    assert prepared.splits["train"].images.shape[1:] == (24, 24, 1)
    assert prepared.report["per_source"][str(data)] == {"ok": 20, "hole": 20}


def test_an_export_with_one_class_only_is_refused(tmp_path: Path) -> None:
    data = synthetic_folder(tmp_path / "d", ("ok",), 20, FRAME, seed=1)
    with pytest.raises(DataError, match=r"1 class\(es\) \(ok\); a classifier needs at least 2"):
        run(request(tmp_path, data))


def test_a_class_below_min_per_class_is_refused_by_default(tmp_path: Path) -> None:
    synthetic_folder(tmp_path / "d", ("ok",), 20, FRAME, seed=1)
    data = synthetic_folder(tmp_path / "d", ("hole",), 3, FRAME, seed=1)
    with pytest.raises(
        DataError, match=r"too few images: hole has 3 image\(s\) \(min_per_class 5; .*on_few: warn"
    ):
        run(request(tmp_path, data))


def test_a_class_below_min_per_class_only_warns_when_configured(tmp_path: Path) -> None:
    synthetic_folder(tmp_path / "d", ("ok",), 20, FRAME, seed=1)
    data = synthetic_folder(tmp_path / "d", ("hole",), 4, FRAME, seed=1)
    prepared, _ = run(request(tmp_path, data, on_few="warn"))
    assert prepared.report["warnings"] == ["hole has 4 image(s), fewer than min_per_class 5"]
    assert sum(prepared.splits[s].counts()["hole"] for s in ("train", "val", "test")) == 4


def test_frames_of_another_size_are_resized_and_reported(tmp_path: Path) -> None:
    data = synthetic_folder(tmp_path / "d", ("ok", "hole"), 10, FRAME, seed=1)
    prepared, _ = run(request(tmp_path, data))
    assert prepared.report["resized"].startswith("20 image(s) are 48x36x3, the base model takes 24x24x1")


def test_frames_of_another_size_are_refused_with_the_reason_when_configured(tmp_path: Path) -> None:
    data = synthetic_folder(tmp_path / "d", ("ok", "hole"), 10, FRAME, seed=1)
    with pytest.raises(
        DataError, match=r"20 image\(s\) are 48x36x3, the base model takes 24x24x1; set input_m"
    ):
        run(request(tmp_path, data, input_mismatch="refuse"))


def test_frames_that_fit_the_model_pass_the_refuse_policy(tmp_path: Path) -> None:
    data = synthetic_folder(tmp_path / "d", ("ok", "hole"), 10, FRAME, seed=1)
    spec = InputSpec(width=48, height=36, color="BGR")
    prepared, _ = run(request(tmp_path, data, input_mismatch="refuse"), spec)
    assert prepared.report["resized"] == ""


def test_a_corrupt_image_is_skipped_and_counted(tmp_path: Path) -> None:
    data = synthetic_folder(tmp_path / "d", ("ok", "hole"), 10, FRAME, seed=1)
    (data / "hole" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (data / "ok" / "empty.jpg").write_bytes(b"")
    prepared, said = run(request(tmp_path, data))
    assert prepared.report["corrupt_skipped"] == 2
    assert sum(sum(s.counts().values()) for s in prepared.splits.values()) == 20
    assert any("broken.png: not a readable image" in line for line in said)


def test_labels_that_differ_from_the_running_model_are_kept_and_reported(tmp_path: Path) -> None:
    data = synthetic_folder(tmp_path / "d", ("ok", "hole", "scratch"), 10, FRAME, seed=1)
    prepared, _ = run(request(tmp_path, data), base_labels=["ok", "spot", "hole"])
    names = prepared.splits["train"].names
    assert names == ("ok", "hole", "scratch")  # the running model's order, new labels after
    change = label_change(["ok", "spot", "hole"], names)
    assert change["changed"] and change["added"] == ["scratch"] and change["removed"] == ["spot"]
    assert not label_change(["ok", "hole", "scratch"], names)["changed"]


def test_the_same_frame_in_two_exports_is_used_once(tmp_path: Path) -> None:
    first = synthetic_folder(tmp_path / "a", ("ok", "hole"), 10, FRAME, seed=1)
    second = synthetic_folder(tmp_path / "b", ("ok", "hole"), 10, FRAME, seed=1)  # the same files again
    prepared, _ = run(request(tmp_path, first, second))
    assert prepared.report["duplicate_ids"] == 20  # content digests match: plain folders
    assert sum(sum(s.counts().values()) for s in prepared.splits.values()) == 20


def test_a_missing_data_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"--data .*nope: not a directory"):
        run(request(tmp_path, tmp_path / "nope"))
