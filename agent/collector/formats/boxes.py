"""Human boxes beside a sample (from Label Studio), and which boxes an export gives each sample.

Votes carry one label per sample; the boxes an annotator drew are kept in storage at
``{model}/{version}/annotations/{id}.json`` (one entry per annotator), never in place of the
model's own boxes in the sample metadata. An export uses the boxes of the first annotator whose
vote agrees with the consensus label; failing that the model's boxes when the consensus agrees
with the model; failing that none, and the provenance line says which.
"""

from __future__ import annotations

import json
from typing import Any

from agent.collector.messages import safe_component
from agent.collector.storage import Storage

Box = dict[str, Any]  # {"label": str, "box": [x1, y1, x2, y2] normalised to the frame}


def annotations_key(model: str, version: str, sample_id: str) -> str:
    return f"{safe_component(model)}/{safe_component(version)}/annotations/{safe_component(sample_id)}.json"


def read_annotations(storage: Storage, key: str) -> dict[str, list[Box]]:
    """Annotator -> boxes, {} when nobody drew any."""
    if not storage.exists(key):
        return {}
    doc = json.loads(storage.read(key))
    return {str(k): list(v) for k, v in doc.get("annotators", {}).items()}


def save_annotation(storage: Storage, key: str, annotator: str, boxes: list[Box]) -> None:
    """Add one annotator's boxes (another annotator's stay as they were)."""
    current = read_annotations(storage, key)
    current[annotator] = boxes
    data = json.dumps({"annotators": current}, sort_keys=True, separators=(",", ":")).encode()
    storage.write_batch([(key, data)])


def boxes_for(storage: Storage, row: dict[str, Any], meta: dict[str, Any]) -> tuple[list[Box], str]:
    """(the boxes an export writes for a labeled sample, where they came from)."""
    drawn = read_annotations(storage, annotations_key(row["model"], row["version"], row["id"]))
    for vote in row["votes"]:
        if vote["label"] == row["label"] and vote["reviewer"] in drawn:
            return drawn[vote["reviewer"]], f"annotator:{vote['reviewer']}"
    if row["label"] == row["predicted"] and meta.get("detections"):
        return [{"label": d["label"], "box": d["box"]} for d in meta["detections"]], "model"
    return [], "none"
