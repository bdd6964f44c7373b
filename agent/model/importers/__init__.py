"""``model import``: a model package from an export alone, reading what the export carries.

One module per kind of export: :mod:`.ultralytics` (embedded metadata), :mod:`.classifier`
(Teachable Machine, Edge Impulse, torch ONNX: label files and tensors), :mod:`.keras`
(converted to TFLite first). This module finds the model file, reads its tensors and
metadata once, picks the importer, then applies the command line's overrides.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from agent.config.schema import ModelConfig
from agent.errors import ModelError
from agent.model.importers import classifier, ultralytics
from agent.model.importers.base import Export, ImportOptions, Notes, Plan
from agent.model.importers.embedded import onnx_metadata, tflite_metadata
from agent.model.importers.labels import labels_beside
from agent.model.importers.tensors import image_input
from agent.model.postprocess.base import dequantize
from agent.runtimes import Runtime, open_runtime
from agent.runtimes.base import SUFFIX_RUNTIME

MODEL_SUFFIXES = (".onnx", ".tflite", ".keras", ".h5")
DEFAULT_VERSION = "1.0.0"
DEFAULT_BUDGET_MS = 1000.0

__all__ = ["DEFAULT_BUDGET_MS", "ImportOptions", "Plan", "find_model", "plan_import"]


def find_model(path: Path) -> Path:
    """The model file: ``path`` itself, or the one model file in an unzipped export folder."""
    if path.is_file():
        if path.suffix.lower() not in MODEL_SUFFIXES:
            raise ModelError(f"{path.name}: a model export ends in {', '.join(MODEL_SUFFIXES)}")
        return path
    if not path.is_dir():
        raise ModelError(f"{path} does not exist")
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES)
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise ModelError(f"{path} holds {len(found)} model files ({names}): name the one to import")
    return found[0]


def plan_import(path: Path, opts: ImportOptions, work: Path) -> Plan:
    """Read the export at ``path`` (a file or an export folder) into a manifest plan; ``work`` is scratch."""
    notes = Notes()
    model = find_model(path)
    keras_facts = None
    source = model
    if model.suffix.lower() in (".keras", ".h5"):
        from agent.model.importers import keras

        source, keras_facts, version = keras.convert(model, work)
        notes.infer(f"{model.name} converted to TFLite with TensorFlow {version}")
    export = read_export(source, opts.input_size)
    if ultralytics.is_ultralytics(export.metadata):
        plan = ultralytics.plan(export, opts, notes)
    else:
        labels = opts.labels or labels_beside(model)
        if labels is None:
            raise classifier.missing_labels(model)
        plan = classifier.plan(export, opts, notes, labels, keras_facts)
    _overrides(plan, opts)
    _identity(plan, model, opts)
    return plan


def read_export(path: Path, size: tuple[int, int] | None) -> Export:
    kind = SUFFIX_RUNTIME[path.suffix.lower()]
    meta, producer = onnx_metadata(path) if kind == "onnx" else (tflite_metadata(path), "")
    runtime = open_runtime(kind, path, ModelConfig(path=str(path)))
    try:
        probabilities = _probe(runtime, size)
        return Export(path, kind, runtime.inputs, runtime.outputs, meta, producer, probabilities)
    finally:
        runtime.close()


def _probe(runtime: Runtime, size: tuple[int, int] | None) -> bool:
    """Whether the first output sums to 1 for a black, a white and a noise input (softmax inside)."""
    spec = runtime.inputs[0]
    try:
        inp = image_input(spec, size)
    except ModelError:
        return False
    shape = (1, inp.height, inp.width, inp.channels)
    if inp.layout == "NCHW":
        shape = (1, inp.channels, inp.height, inp.width)
    runtime.set_input_shape(shape)
    if np.issubdtype(spec.dtype, np.integer):
        info = np.iinfo(spec.dtype.type)  # type: ignore[type-var]
        lo, hi = float(info.min), float(info.max)
    else:
        lo, hi = -1.0, 1.0
    rng = np.random.default_rng(0)
    for fill in (lo, hi, None):
        x = rng.uniform(lo, hi, shape) if fill is None else np.full(shape, fill)
        out = dequantize(runtime.run(x.astype(spec.dtype))[0], runtime.outputs[0]).reshape(-1)
        if out.size > 4096 or out.min() < -1e-3 or out.max() > 1 + 1e-3 or abs(float(out.sum()) - 1) > 0.02:
            return False
    return True


def _overrides(plan: Plan, opts: ImportOptions) -> None:
    section = plan.doc["input"]
    for key in ("color", "scale", "mean", "std", "resize"):
        value = getattr(opts, key)
        if value is not None:
            section[key] = list(value) if isinstance(value, tuple) else value
            plan.notes.settled(key, f"input.{key} = {section[key]}")
    if opts.defect_labels is not None:
        plan.doc["defect_labels"] = list(opts.defect_labels)
        plan.notes.settled("defect_labels", f"defect_labels = {', '.join(opts.defect_labels)}")


def _identity(plan: Plan, model: Path, opts: ImportOptions) -> None:
    notes = plan.notes
    name = opts.name or re.sub(r"[^A-Za-z0-9_.-]+", "-", model.stem).strip("-.") or "imported"
    if opts.name is None:
        notes.guess(f"name {name!r} from the file name (override with --name)", "name")
    version = opts.version or DEFAULT_VERSION
    if opts.version is None:
        notes.guess(f"version {version} (the export carries no model version; override with --version)")
    budget = opts.budget_ms or DEFAULT_BUDGET_MS
    if opts.budget_ms is None:
        notes.guess(f"budget_ms {budget:g} (set the line's real budget with --budget-ms)")
    plan.doc = {
        "name": name,
        "version": version,
        "description": f"imported from {model.name} ({plan.tool}) by inspection-agent model import",
        "budget_ms": budget,
        **plan.doc,
    }
