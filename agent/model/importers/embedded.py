"""Read what an export carries besides its weights: Ultralytics' metadata in ONNX and in TFLite.

Ultralytics writes one dictionary (names, imgsz, stride, task, end2end, …). In ONNX it is
``metadata_props`` with each value ``str()``-ed (so ``names`` is a Python dict repr); in
TFLite it is a zip archive appended to the flatbuffer: ``metadata.json`` from 8.1 on,
``temp_meta.txt`` (a Python repr, packed by tflite_support as an associated file) before.
"""

from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path
from typing import Any

from agent.errors import ModelError

_KEYS = ("names", "imgsz", "stride", "task", "batch", "end2end", "channels", "args")


def literal(value: str) -> Any:
    """An ONNX metadata value: a Python literal when it is one (dict, list, number, bool), else the text."""
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value


def onnx_metadata(path: Path) -> tuple[dict[str, Any], str]:
    """(``metadata_props`` with values parsed, producer name), through onnxruntime (the onnx extra)."""
    from agent.runtimes.onnx import _import_ort

    ort = _import_ort()
    try:
        meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"{path.name} does not load as ONNX: {str(exc).splitlines()[0][:160]}") from exc
    props = {str(k): literal(str(v)) for k, v in dict(meta.custom_metadata_map).items()}
    return props, str(meta.producer_name or "")


def tflite_metadata(path: Path) -> dict[str, Any]:
    """The dictionary in the zip appended to a TFLite file, or {} when there is none."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return {}
    with archive:
        names = archive.namelist()
        for member in sorted(names, key=lambda n: (n != "metadata.json", n)):
            text = archive.read(member).decode("utf-8", errors="replace")
            doc = _parse(text)
            if isinstance(doc, dict) and any(k in doc for k in _KEYS):
                return doc
    return {}


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return literal(text)


def class_names(meta: dict[str, Any]) -> tuple[str, ...] | None:
    """Ultralytics ``names`` ({0: 'a', 1: 'b'} or a list; JSON turns the keys into strings) in index order."""
    names = meta.get("names")
    if isinstance(names, list):
        return tuple(str(n) for n in names)
    if not isinstance(names, dict):
        return None
    try:
        indexed = {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError):
        return None
    if sorted(indexed) != list(range(len(indexed))):
        raise ModelError(f"embedded names have indices {sorted(indexed)}; expected 0..{len(indexed) - 1}")
    return tuple(indexed[i] for i in range(len(indexed)))
