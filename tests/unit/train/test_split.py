"""The split never moves an id, duplicates go, and the ledger a package keeps wins over the digest."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from agent.train.data import Samples
from agent.train.split import (
    MergeReport,
    assign,
    deduplicate,
    hash_split,
    read_ledger,
    write_ledger,
)
from agent.train.zoo import synthetic_folder

PERCENTS = (70, 15, 15)


def samples(ids: list[str], labels: list[int], images: np.ndarray | None = None) -> Samples:
    if images is None:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (len(ids), 32, 32, 1), dtype=np.uint8)
    origins = ["old"] * len(ids)
    return Samples(images, np.asarray(labels, np.int64), ids, list(ids), origins, ("ok", "hole"))


def test_an_id_keeps_its_split_however_much_data_is_added() -> None:
    few = [f"id-{i}" for i in range(200)]
    many = few + [f"new-{i}" for i in range(2000)]
    first = assign(samples(few, [i % 2 for i in range(200)]), {}, PERCENTS, MergeReport())
    second = assign(samples(many, [i % 2 for i in range(2200)]), {}, PERCENTS, MergeReport())
    assert second[:200] == first
    shares = {s: second.count(s) / len(second) for s in ("train", "val", "test")}
    assert abs(shares["train"] - 0.70) < 0.04 and abs(shares["test"] - 0.15) < 0.04


def test_the_ledger_wins_over_the_digest(tmp_path: Path) -> None:
    ids = [f"id-{i}" for i in range(40)]
    data = samples(ids, [i % 2 for i in range(40)])
    flipped = ["test" if hash_split(i, PERCENTS) == "train" else "train" for i in ids]
    write_ledger(tmp_path / "dataset.csv", data, flipped)
    ledger = read_ledger(tmp_path / "dataset.csv")
    assert assign(data, ledger, PERCENTS, MergeReport()) == flipped


def test_every_class_gets_a_test_and_val_image_from_new_ids() -> None:
    ids = [f"x{i}" for i in range(6)]  # a small class: the digest alone may leave val or test empty
    report = MergeReport()
    out = assign(samples(ids, [1] * 6), {}, PERCENTS, report)
    assert "test" in out and "val" in out


def test_a_re_encoded_copy_of_a_frame_is_a_near_duplicate(tmp_path: Path) -> None:
    folder = synthetic_folder(tmp_path, ("ok", "hole"), 30, (128, 96), seed=4)
    frames = [cv2.imread(str(p)) for p in sorted(folder.rglob("*.png"))]
    images = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in frames])
    copy = cv2.imdecode(cv2.imencode(".jpg", images[3], [cv2.IMWRITE_JPEG_QUALITY, 92])[1], cv2.IMREAD_COLOR)
    all_images = np.concatenate([images, copy[None]])
    ids = [f"f{i}" for i in range(len(images))] + ["copy-of-f3"]
    labels = [0] * 30 + [1] * 30 + [1]  # the copy was labeled differently: a conflict to report
    report = MergeReport()
    kept = deduplicate(samples(ids, labels, all_images), 12, report)
    assert len(kept) == 60 and "copy-of-f3" not in kept.ids
    assert report.near_duplicates == 1 and report.label_conflicts == ["copy-of-f3 ~ f3"]


def test_repeated_ids_are_dropped_and_counted() -> None:
    report = MergeReport()
    kept = deduplicate(samples(["a", "b", "a"], [0, 1, 0]), 0, report)
    assert kept.ids == ["a", "b"] and report.duplicate_ids == 1
