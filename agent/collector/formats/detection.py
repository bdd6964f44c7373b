"""Detection datasets in the two conventions training tools read: COCO and YOLO (Ultralytics).

Boxes are kept 0..1 of the frame inside the collector; each format gets its own convention
here, once: COCO ``bbox`` is ``[x, y, width, height]`` in pixels from the top-left corner
(``instances_{split}.json`` beside ``images/{split}/``), YOLO is one ``labels/{split}/{id}.txt``
per image of ``class cx cy w h`` normalised to 0..1, with ``data.yaml`` naming the classes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.collector.formats.boxes import Box

FORMATS = ("coco", "yolo")


@dataclass(slots=True)
class Image:
    """One exported detection sample: where its image went, its size, and its boxes."""

    sample_id: str
    split: str
    rel: str  # image path inside the export
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)


def image_path(sample_id: str, split: str) -> str:
    return f"images/{split}/{sample_id}.jpg"


def class_list(images: list[Image], model_labels: list[str]) -> list[str]:
    """The model's classes in its order, then any class only an annotator used."""
    names = list(dict.fromkeys(model_labels))
    for image in images:
        names += [b["label"] for b in image.boxes if b["label"] not in names]
    return names


def write(fmt: str, target: Path, images: list[Image], names: list[str]) -> int:
    """Write the format's label files; return how many boxes were written."""
    return _write_coco(target, images, names) if fmt == "coco" else _write_yolo(target, images, names)


def _write_coco(target: Path, images: list[Image], names: list[str]) -> int:
    ids = {name: i + 1 for i, name in enumerate(names)}
    by_split: dict[str, list[Image]] = defaultdict(list)
    for image in images:
        by_split[image.split].append(image)
    (target / "annotations").mkdir(exist_ok=True)
    total = 0
    for split, members in sorted(by_split.items()):
        doc: dict[str, Any] = {
            "info": {"description": f"inspection-agent dataset export ({split})", "version": "1.0"},
            "licenses": [],
            "categories": [{"id": i, "name": n, "supercategory": "object"} for n, i in ids.items()],
            "images": [],
            "annotations": [],
        }
        for number, image in enumerate(sorted(members, key=lambda m: m.sample_id), start=1):
            doc["images"].append({"id": number, "file_name": Path(image.rel).name, "width": image.width,
                                  "height": image.height, "sample_id": image.sample_id})  # fmt: skip
            for box in image.boxes:
                x1, y1, x2, y2 = box["box"]
                x, y = x1 * image.width, y1 * image.height
                w, h = (x2 - x1) * image.width, (y2 - y1) * image.height
                doc["annotations"].append({
                    "id": len(doc["annotations"]) + 1, "image_id": number, "category_id": ids[box["label"]],
                    "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                    "area": round(w * h, 2), "iscrowd": 0,
                })  # fmt: skip
        total += len(doc["annotations"])
        (target / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc), encoding="utf-8")
    return total


def _write_yolo(target: Path, images: list[Image], names: list[str]) -> int:
    ids = {name: i for i, name in enumerate(names)}
    total = 0
    for image in images:
        lines = []
        for box in image.boxes:
            x1, y1, x2, y2 = box["box"]
            cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
            lines.append(f"{ids[box['label']]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        path = target / "labels" / image.split / f"{image.sample_id}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines), encoding="utf-8")  # an empty file: an image with nothing in it
        total += len(lines)
    splits = sorted({image.split for image in images})
    data = {"path": ".", **{s: f"images/{s}" for s in splits}, "names": dict(enumerate(names))}
    (target / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return total
