"""``dataset export --format label-studio``: the samples still waiting for a label, as Label Studio tasks.

Images go to ``images/``; ``tasks.json`` refers to them through ``--image-url`` (default: Label
Studio's local file serving, with ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to the export
folder). Tasks are listed most uncertain first, as in the review queue, and carry their split
(stratified by the model's label), so the 70/15/15 split survives the round trip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.collector.dataset import Split, assign_splits, write_summary
from agent.collector.formats import label_studio
from agent.collector.review import queries
from agent.collector.review.service import ReviewService
from agent.errors import AgentError


def open_ids(service: ReviewService, model: str | None, version: str | None) -> list[str]:
    sql = "SELECT r.id FROM review r WHERE r.state = 'open'"
    args: list[Any] = []
    for column, value in (("model", model), ("version", version)):
        if value is not None:
            sql += f" AND r.{column} = ?"
            args.append(value)
    return [r[0] for r in service.index.query(sql + " ORDER BY r.priority, r.id", args)]


def export_tasks(
    service: ReviewService,
    target: Path,
    *,
    split: Split,
    seed: int,
    model: str | None,
    version: str | None,
    image_url: str | None,
) -> dict[str, Any]:
    samples = [service.sample(i) for i in open_ids(service, model, version)]
    present = [(s, key) for s in samples if (key := service.locate(s)) is not None]
    if not present:
        raise AgentError("no samples waiting for a label to export (every sample is labeled or missing)")
    kind = "detection" if any("detections" in s["meta"] for s, _ in present) else "classification"
    labels: list[str] = []
    for s, _ in present:
        names = list(s["meta"].get("scores") or {}) if kind == "detection" else s["labels"]
        labels += [n for n in names if n not in labels]
    splits = assign_splits([(s["id"], s["predicted"], key) for s, key in present], split, seed)
    (target / "images").mkdir(parents=True, exist_ok=True)
    tasks = []
    with (target / "provenance.jsonl").open("w", encoding="utf-8") as prov:
        for s, key in present:
            rel = f"images/{s['id']}.jpg"
            (target / rel).write_bytes(service.storage.read(key))
            url = (image_url if image_url is not None else label_studio.LOCAL_FILES) + rel
            tasks.append(label_studio.task(s, splits[s["id"]], url, kind))
            prov.write(
                json.dumps(_provenance(service, s, splits[s["id"]], rel), separators=(",", ":")) + "\n"
            )
    (target / "tasks.json").write_text(json.dumps(tasks, indent=1) + "\n", encoding="utf-8")
    (target / "labeling_config.xml").write_text(label_studio.labeling_config(kind, labels), encoding="utf-8")
    return write_summary(target, {
        "format": "label-studio", "task": kind, "labels": labels, "split": dict(split.parts), "seed": seed,
        "model": model, "version": version, "samples": len(present), "tasks": "tasks.json",
        "labeling_config": "labeling_config.xml", "provenance": "provenance.jsonl",
        "missing": [s["id"] for s in samples if all(s is not p for p, _ in present)],
    })  # fmt: skip


def _provenance(service: ReviewService, s: dict[str, Any], split: str, rel: str) -> dict[str, Any]:
    votes = [v for v in queries.votes(service.index, s["id"]) if v["kind"] != "retracted"]
    return {
        "id": s["id"], "split": split, "path": rel, "label": None, "predicted": s["predicted"],
        "score": s["score"], "state": s["state"], "how": "unlabeled",
        "votes": [{k: v[k] for k in ("reviewer", "label", "ts", "source")} for v in votes],
    }  # fmt: skip
