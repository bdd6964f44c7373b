"""``dataset export --format coco|yolo``: the consensus-labeled detection samples with their boxes.

Same samples, split and provenance as the other formats; each sample's boxes come from
:func:`agent.collector.formats.boxes.boxes_for`, and its provenance line says whose they are.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from agent.collector.dataset import (
    Split,
    assign_splits,
    labeled_rows,
    provenance_line,
    write_metadata,
    write_summary,
)
from agent.collector.formats import detection
from agent.collector.formats.boxes import boxes_for
from agent.collector.review import queries
from agent.collector.review.service import ReviewService
from agent.errors import AgentError


def export_boxes(
    service: ReviewService,
    target: Path,
    *,
    fmt: str,
    split: Split,
    seed: int,
    model: str | None,
    version: str | None,
) -> dict[str, Any]:
    rows, missing = labeled_rows(service, model, version)
    samples = {r["id"]: queries.sample(service.index, r["id"]) or {} for r in rows}
    if not any("detections" in s.get("meta", {}) for s in samples.values()):
        raise AgentError(
            f"--format {fmt} writes boxes, and none of these samples comes from a detection model "
            "(use --format imagefolder or csv for classifiers)"
        )
    splits = assign_splits([(r["id"], r["label"], r["path"]) for r in rows], split, seed)
    target.mkdir(parents=True, exist_ok=True)
    images: list[detection.Image] = []
    classes: list[str] = []
    counts: Counter[str] = Counter()
    records = []
    with (target / "provenance.jsonl").open("w", encoding="utf-8") as prov:
        for row in rows:
            sample, name = samples[row["id"]], splits[row["id"]]
            meta = sample["meta"]
            boxes, source = boxes_for(service.storage, {**row, **_identity(sample)}, meta)
            rel = detection.image_path(row["id"], name)
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).write_bytes(service.storage.read(row["path"]))
            images.append(
                detection.Image(row["id"], name, rel, meta["image"]["width"], meta["image"]["height"], boxes)
            )
            classes += [c for c in meta.get("scores") or {} if c not in classes]
            counts[f"{name}/{row['label']}"] += 1
            records.append({"id": row["id"], "path": rel})
            line = {**provenance_line(row, name, rel), "boxes": source, "box_count": len(boxes)}
            prov.write(json.dumps(line, separators=(",", ":")) + "\n")
    names = detection.class_list(images, classes)
    total = detection.write(fmt, target, images, names)
    write_metadata(service.index, target, records)
    return write_summary(target, {
        "format": fmt, "split": dict(split.parts), "seed": seed, "model": model, "version": version,
        "samples": len(rows), "boxes": total, "classes": names, "counts": dict(sorted(counts.items())),
        "provenance": "provenance.jsonl", "missing": [r["id"] for r in missing],
    })  # fmt: skip


def _identity(sample: dict[str, Any]) -> dict[str, Any]:
    return {"model": sample["model"], "version": sample["version"], "predicted": sample["predicted"]}
