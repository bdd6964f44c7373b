"""``model evaluate``: a package's figures on labeled frames, overall and per subgroup.

Every frame goes through the agent's own preprocessing, runtime and postprocessing
(:class:`LoadedModel`), so the figures are what the device would produce. Subgroups
(site, line, device from the export's metadata; a lighting bucket from the frame's
brightness) show where a model is weak even when its average looks fine.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.imagestats import image_stats
from agent.metrics import Outcome, classification_report
from agent.model.evaldata import META_KEYS, EvalSet, check_labels
from agent.model.package import MANIFEST, open_package
from agent.model.progress import Progress
from agent.runtimes.base import RuntimeKind

GROUPS = (*META_KEYS, "lighting")
UNKNOWN = "(unknown)"
# Lighting buckets on the mean gray level of the frame at the model's input size.
LIGHTING = ((70.0, "dark"), (180.0, "normal"), (256.0, "bright"))


def lighting_bucket(gray: np.ndarray) -> str:
    brightness = image_stats(gray)[0]
    return next(name for limit, name in LIGHTING if brightness < limit)


@dataclass(slots=True)
class Run:
    """One package on one runtime over an evaluation set: per-frame outcomes, groups and latencies."""

    runtime: RuntimeKind
    precision: str
    outcomes: list[Outcome] = field(default_factory=list)
    groups: list[dict[str, str]] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def package_digest(root: Path) -> str:
    """sha256 of the package's manifest.yaml: it pins every model file's sha256, labels and thresholds."""
    return hashlib.sha256((root / MANIFEST).read_bytes()).hexdigest()


def describe_package(root: Path) -> dict[str, Any]:
    package = open_package(root)
    m = package.manifest
    return {
        "name": m.name,
        "version": m.version,
        "sha256": package_digest(package.root),
        "files": {k: sha for k, (_, sha) in m.files().items()},
        "labels": list(package.labels),
    }


def detect_precision(runtime: Any, model_file: Path) -> str:
    """ "int8" when the model computes in integers (quantized tensors or QDQ nodes), else "float"."""
    if any(t.quantized for t in (*runtime.inputs, *runtime.outputs)):
        return "int8"
    if model_file.suffix == ".onnx" and b"QuantizeLinear" in model_file.read_bytes():
        return "int8"
    return "float"


def run_package(
    root: Path,
    data: EvalSet,
    runtime: RuntimeKind | None = None,
    *,
    label_map: dict[str, str] | None = None,
    progress: bool = True,
) -> Run:
    """Infer every frame of ``data``; unreadable images are skipped and listed, never fatal."""
    from agent.config.schema import ModelConfig
    from agent.model.loaded import load_model

    model = load_model(str(root), ModelConfig(path=str(root), runtime=runtime or "auto"), warmup=False)
    try:
        labels = [(label_map or {}).get(k, k) for k in model.package.labels]
        check_labels(data, labels, f"{model.package.ident}")
        rename = dict(zip(model.package.labels, labels, strict=True))
        defects = {rename[k] for k in model.package.defect_labels}
        run = Run(model.runtime.name, detect_precision(model.runtime, model.package.model_file))
        bar = Progress(len(data.items), f"{model.package.ident} ({run.runtime})") if progress else None
        spec = model.package.manifest.input
        for item in data.items:
            _infer_one(model, item, run, rename=rename, defects=defects, size=(spec.width, spec.height))
            if bar is not None:
                bar.step()
        if bar is not None:
            bar.close()
        return run
    finally:
        model.close()


def _infer_one(
    model: Any, item: Any, run: Run, *, rename: dict[str, str], defects: set[str], size: tuple[int, int]
) -> None:
    image = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
    if image is None:
        run.skipped.append({"path": str(item.path), "reason": "not a readable image"})
        return
    started = time.perf_counter()
    result = model.infer(image)
    run.latency_ms.append((time.perf_counter() - started) * 1000)
    gray = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), size, interpolation=cv2.INTER_AREA)
    run.outcomes.append(
        Outcome(item.label, rename.get(result.label, result.label), item.label in defects, result.is_defect)
    )
    run.groups.append(
        {**{k: item.meta.get(k, UNKNOWN) for k in META_KEYS}, "lighting": lighting_bucket(gray)}
    )


def latency(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    arr = np.asarray(values)
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p99": round(float(np.percentile(arr, 99)), 3)}


def figures(run: Run, labels: Sequence[str]) -> dict[str, Any]:
    """The run's overall report, latency, and the same figures per subgroup that has frames."""
    out = classification_report(run.outcomes, labels)
    out["latency_ms"] = latency(run.latency_ms)
    by: dict[str, dict[str, Any]] = {}
    for key in GROUPS:
        members: dict[str, list[Outcome]] = defaultdict(list)
        for outcome, group in zip(run.outcomes, run.groups, strict=True):
            members[group[key]].append(outcome)
        if set(members) != {UNKNOWN}:
            by[key] = {
                name: _brief(classification_report(rows, labels)) for name, rows in sorted(members.items())
            }
    out["by"] = by
    return out


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    """A subgroup's headline figures (its full matrix would drown the report)."""
    keep = ("samples", "accuracy", "accuracy_ci95", "defect_recall", "defect_precision")
    return {k: report[k] for k in keep} | {"recall": {k: v["recall"] for k, v in report["per_class"].items()}}


def evaluate(
    root: Path,
    data: EvalSet,
    runtime: RuntimeKind | None = None,
    *,
    label_map: dict[str, str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The ``model evaluate`` report: every runtime file the package carries unless one is asked for."""
    package = describe_package(root)
    kinds: list[RuntimeKind] = [runtime] if runtime else list(open_package(root).manifest.files())
    runs = [run_package(root, data, k, label_map=label_map, progress=progress) for k in kinds]
    labels = [(label_map or {}).get(k, k) for k in package["labels"]]
    per_runtime: dict[str, dict[str, Any]] = {
        r.runtime: {"precision": r.precision, **figures(r, labels)} for r in runs
    }
    primary = runs[0]
    return {
        "package": package,
        "data": {
            "root": str(data.root),
            "layout": data.layout,
            "frames": len(data.items),
            "evaluated": len(primary.outcomes),
            "skipped": len(primary.skipped),
            "skipped_files": primary.skipped,
            "classes": list(data.classes),
            "empty_classes": list(data.empty_classes),
        },
        "runtime": primary.runtime,
        **per_runtime[primary.runtime],
        "runtimes": per_runtime,
        "int8_gap": int8_gap(per_runtime),
    }


def int8_gap(per_runtime: Mapping[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Float minus int8 accuracy and defect recall, when the package carries one file of each."""
    floats = [k for k, v in per_runtime.items() if v["precision"] == "float"]
    ints = [k for k, v in per_runtime.items() if v["precision"] == "int8"]
    if not floats or not ints:
        return None
    f, q = per_runtime[floats[0]], per_runtime[ints[0]]
    gap = {"float": floats[0], "int8": ints[0]}
    for key in ("accuracy", "defect_recall"):
        if f[key] is not None and q[key] is not None:
            gap[key] = round(f[key] - q[key], 4)
    return gap
