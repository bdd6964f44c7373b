"""Label Studio: tasks with the model's guess out, finished annotations back in as review votes.

Export: ``tasks.json`` (Label Studio's import format: ``data`` with the image URL, the sample id
and the model's score, so a project can sort by it, and ``predictions`` holding the model's
answer as a pre-annotation: ``choices`` for a classifier, ``rectanglelabels`` for a detector,
boxes in percent of the image) and ``labeling_config.xml`` to paste into the project.

Import: Label Studio's JSON export. Each finished annotation becomes one vote, by
``label-studio:<annotator>``, through the same review service as the web app: it counts
towards consensus like any reviewer's, a second vote by the same annotator is refused, and a
labeled sample is never overwritten. Boxes are kept beside the sample (:mod:`.boxes`); a
detection annotation's vote is its most frequent box label, or ``ok`` when nothing was drawn.
Every task that cannot be imported (unknown sample, unknown label, already voted) is reported
on its own line; the others still import.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from agent.collector.formats.boxes import Box, annotations_key, save_annotation
from agent.collector.review.errors import ReviewError
from agent.collector.review.service import ReviewService
from agent.collector.storage import StorageError
from agent.errors import AgentError

FROM, TO = "label", "image"
NOTHING_FOUND = "ok"  # what a detector reports when it finds nothing; the vote for an empty image
LOCAL_FILES = "/data/local-files/?d="  # Label Studio's local file serving, rooted at the export folder


def labeling_config(kind: str, labels: list[str]) -> str:
    tag, item = ("RectangleLabels", "Label") if kind == "detection" else ("Choices", "Choice")
    extra = "" if kind == "detection" else ' choice="single" showInline="true"'
    options = "".join(f"\n    <{item} value={quoteattr(name)}/>" for name in labels)
    return (
        f'<View>\n  <Image name="{TO}" value="$image"/>\n'
        f'  <{tag} name="{FROM}" toName="{TO}"{extra}>{options}\n  </{tag}>\n</View>\n'
    )


def task(sample: dict[str, Any], split: str, image_url: str, kind: str) -> dict[str, Any]:
    """One task: the image, what the collector knows of it, and the model's answer as a prediction."""
    meta = sample["meta"]
    model = f"{sample['model']}/{sample['version']}"
    data = {
        "image": image_url, "sample_id": sample["id"], "model": model, "predicted": sample["predicted"],
        "score": sample["score"], "priority": sample["priority"], "split": split, "kind": kind,
        "site": sample["site"], "line": sample["line"], "device": sample["device"], "ts": sample["ts"],
    }  # fmt: skip
    if "anomaly_score" in meta:
        data["anomaly_score"] = meta["anomaly_score"]  # anomaly models: sortable like the score
    if kind == "detection":
        result = [_rectangle(i, d, meta["image"]) for i, d in enumerate(meta.get("detections") or [])]
    else:
        result = [{"from_name": FROM, "to_name": TO, "type": "choices",
                   "value": {"choices": [sample["predicted"]]}}]  # fmt: skip
    return {
        "data": data,
        "predictions": [{"model_version": model, "score": sample["score"], "result": result}],
    }


def _rectangle(i: int, det: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    x1, y1, x2, y2 = det["box"]
    return {
        "id": f"model-{i}", "from_name": FROM, "to_name": TO, "type": "rectanglelabels",
        "original_width": image["width"], "original_height": image["height"], "image_rotation": 0,
        "value": {"x": round(x1 * 100, 4), "y": round(y1 * 100, 4), "width": round((x2 - x1) * 100, 4),
                  "height": round((y2 - y1) * 100, 4), "rotation": 0, "rectanglelabels": [det["label"]]},
        "score": det["score"],
    }  # fmt: skip


# --- import -----------------------------------------------------------------------------------


@dataclass(slots=True)
class ImportReport:
    votes: int = 0
    boxes: int = 0
    skipped: int = 0  # annotations the annotator cancelled (skipped in Label Studio)
    problems: list[str] = field(default_factory=list)


def read_export(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AgentError(f"{path}: not a Label Studio JSON export ({exc})") from exc
    if not isinstance(doc, list) or not all(isinstance(t, dict) for t in doc):
        raise AgentError(f"{path}: a Label Studio JSON export is a list of tasks")
    return doc


def import_annotations(
    service: ReviewService, tasks: list[dict[str, Any]], names: dict[str, str] | None = None
) -> ImportReport:
    """``names`` maps Label Studio user ids to names (its JSON export names annotators by id)."""
    report = ImportReport()
    for number, item in enumerate(tasks, start=1):
        where = f"task {item.get('id', f'#{number}')}"
        sample_id = str((item.get("data") or {}).get("sample_id", ""))
        try:
            sample = service.sample(sample_id) if sample_id else None
        except ReviewError:
            sample = None
        if sample is None:
            report.problems.append(f"{where}: unknown sample id {sample_id or '(none in data.sample_id)'}")
            continue
        kind = str(item["data"].get("kind") or ("detection" if "detections" in sample["meta"] else ""))
        for annotation in item.get("annotations") or []:
            _one(
                service,
                sample,
                kind=kind,
                who=annotator(annotation, names or {}),
                annotation=annotation,
                where=f"{where} ({sample_id})",
                report=report,
            )
    return report


def _one(
    service: ReviewService,
    sample: dict[str, Any],
    *,
    kind: str,
    who: str,
    annotation: dict[str, Any],
    where: str,
    report: ImportReport,
) -> None:
    if annotation.get("was_cancelled"):
        report.skipped += 1
        return
    reviewer = f"label-studio:{who}"
    try:
        label, boxes = _answer(annotation.get("result") or [], sample, kind)
        service.vote(sample["id"], reviewer, label, "label-studio")
    except ReviewError as exc:
        report.problems.append(f"{where}: {reviewer}: {exc}")
        return
    report.votes += 1
    if boxes is not None:
        try:
            key = annotations_key(sample["model"], sample["version"], sample["id"])
            save_annotation(service.storage, key, reviewer, boxes)
        except StorageError as exc:
            report.problems.append(f"{where}: {reviewer}: vote kept, boxes not stored: {exc}")
            return
        report.boxes += len(boxes)


def annotator(annotation: dict[str, Any], names: dict[str, str]) -> str:
    """The annotator's name: ``names[id]``, else what the export says (a user object's e-mail,
    ``created_username``), else ``user-<id>``."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        uid = str(who.get("id", "?"))
        full = f"{who.get('first_name', '')} {who.get('last_name', '')}"
        named = str(who.get("email") or who.get("username") or full)
    else:
        uid, named = str(who), str(annotation.get("created_username") or "").split(",")[0]
    return names.get(uid) or named.strip() or f"user-{uid}"


def _answer(results: list[dict[str, Any]], sample: dict[str, Any], kind: str) -> tuple[str, list[Box] | None]:
    """(the vote, the boxes of a detection annotation or None); ReviewError when it cannot be a vote."""
    labels = set(sample["labels"])
    rects = [r for r in results if r.get("type") == "rectanglelabels"]
    choices = [r for r in results if r.get("type") == "choices"]
    if choices and not rects:
        picked = (choices[0].get("value") or {}).get("choices") or []
        if len(picked) != 1:
            raise ReviewError(f"expected one choice, got {picked}")
        return str(picked[0]), None
    if not rects and kind != "detection":
        raise ReviewError("the annotation has no choice")
    boxes = [_box(r) for r in rects]
    unknown = sorted({b["label"] for b in boxes} - labels)
    if unknown:
        raise ReviewError(f"box label(s) {', '.join(map(repr, unknown))} not labels of {sample['model']}")
    counts = Counter(b["label"] for b in boxes)
    return (counts.most_common(1)[0][0] if counts else NOTHING_FOUND), boxes


def _box(result: dict[str, Any]) -> Box:
    value = result.get("value") or {}
    names = value.get("rectanglelabels") or []
    if len(names) != 1:
        raise ReviewError(f"a rectangle needs one label, got {names}")
    try:
        x, y, w, h = (float(value[k]) / 100.0 for k in ("x", "y", "width", "height"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ReviewError(f"a rectangle without x, y, width, height: {value}") from exc
    clip = [min(max(v, 0.0), 1.0) for v in (x, y, x + w, y + h)]
    return {"label": str(names[0]), "box": [round(v, 6) for v in clip]}
