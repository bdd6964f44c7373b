"""Ultralytics exports (YOLOv8, YOLO11, YOLO26; ``detect`` and ``classify``) from their embedded metadata.

What Ultralytics' own loader does, written as a manifest: RGB, 0..1 pixels, letterbox with
grey 114 for detection (centre crop for classification), class names in index order.
Raw heads are ``[1, 4+nc, anchors]`` (xywh); end-to-end heads (``end2end: True``, or an
``nms=True`` export) are ``[1, 300, 6]`` xyxy rows. TFLite boxes are 0..1 of the input, ONNX
boxes input pixels, and the manifest says which so no reader has to know.
"""

from __future__ import annotations

from typing import Any

from agent.errors import ModelError
from agent.model.importers.base import Export, ImportOptions, Notes, Plan
from agent.model.importers.embedded import class_names
from agent.model.importers.labels import check_count
from agent.model.importers.tensors import image_input

TASKS = {"detect": "detection", "classify": "classification"}


def is_ultralytics(meta: dict[str, Any]) -> bool:
    return "names" in meta and "task" in meta and ("imgsz" in meta or "stride" in meta)


def _size(meta: dict[str, Any]) -> tuple[int, int] | None:
    imgsz = meta.get("imgsz")
    if isinstance(imgsz, int):
        return imgsz, imgsz
    if isinstance(imgsz, list | tuple) and len(imgsz) == 2:
        return int(imgsz[1]), int(imgsz[0])  # Ultralytics writes [height, width]
    return None


def plan(export: Export, opts: ImportOptions, notes: Notes) -> Plan:
    meta = export.metadata
    task = str(meta.get("task"))
    if task not in TASKS:
        raise ModelError(
            f"Ultralytics task {task!r} is not supported by this agent (detect or classify); "
            "export a detect or classify model"
        )
    labels = class_names(meta)
    if labels is None:
        raise ModelError(f"{export.path.name}: Ultralytics metadata has no usable 'names'")
    source = "the embedded names"
    if opts.labels is not None:
        labels, source = opts.labels.names, opts.labels.source
    inp = image_input(export.inputs[0], _size(meta))
    notes.infer(
        f"Ultralytics {meta.get('version', '?')} {task} export ({export.runtime}): {len(labels)} labels "
        f"from {source}, input {inp.width}x{inp.height} {inp.layout}, stride {meta.get('stride', '?')}"
    )
    doc: dict[str, Any] = {"task": TASKS[task], "labels": list(labels)}
    doc["input"] = {
        "width": inp.width, "height": inp.height, "layout": inp.layout, "color": "RGB",
        "scale": 1.0 / 255.0, "mean": [0.0], "std": [1.0],
        "resize": "letterbox" if task == "detect" else "center_crop",
    }  # fmt: skip
    if task == "detect":
        doc["input"]["letterbox_fill"] = 114
        doc["output"] = _detect_output(export, meta, labels, notes)
        doc["defect_labels"] = list(opts.defect_labels or labels)
        if opts.defect_labels is None:
            notes.guess("every class is a defect (override with --defect-labels)", "defect_labels")
    else:
        check_count(labels, _width(export), source)
        doc["output"] = {"format": "scores", "activation": "none"}
        notes.infer("classify head ends in softmax: scores used as they are")
    notes.infer("preprocessing as Ultralytics' own loader: RGB, pixels / 255, " + doc["input"]["resize"])
    return Plan(doc, export.path, notes, f"Ultralytics {task}")


def _width(export: Export) -> int:
    shape = export.outputs[0].shape
    return int(shape[-1] or 0)


def _detect_output(
    export: Export, meta: dict[str, Any], labels: tuple[str, ...], notes: Notes
) -> dict[str, Any]:
    if len(export.outputs) != 1:
        raise ModelError(
            f"an Ultralytics detect export has one output; {export.path.name} has {len(export.outputs)}"
        )
    shape = export.outputs[0].shape
    args = meta.get("args")
    nms_inside = isinstance(args, dict) and bool(args.get("nms"))  # an nms=True export: [1, 300, 6] too
    end2end = bool(meta.get("end2end")) or nms_inside
    units = "normalized" if export.runtime == "tflite" else "pixels"
    where = "0..1 of the input" if units == "normalized" else "input pixels"
    if end2end:
        if len(shape) != 3 or shape[2] != 6:
            raise ModelError(
                f"end-to-end export should output [1, N, 6], {export.path.name} outputs {list(shape)}"
            )
        notes.infer(f"end-to-end head [1, {shape[1]}, 6]: x1,y1,x2,y2,score,class in {where}; no NMS added")
        return {"format": "end2end", "box_units": units, "box_format": "xyxy"}
    if len(shape) != 3 or 4 + len(labels) not in shape[1:]:
        raise ModelError(
            f"{export.path.name} outputs {list(shape)}, but {len(labels)} labels need "
            f"[1, {4 + len(labels)}, N]"
        )
    notes.infer(f"raw head {list(shape)}: cx,cy,w,h in {where} + {len(labels)} class scores; class-aware NMS")
    return {"format": "yolo", "box_units": units, "box_format": "xywh", "activation": "none"}
