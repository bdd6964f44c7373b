"""``inspection-agent train``, step by step: base, data, training, int8 export, evaluation, package.

Each step is a short function; :func:`run` only strings them together. The package is
assembled in a hidden sibling of ``--out`` and moved into place only when it is complete
and passes the same validation ``inspection-agent model validate`` runs.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from agent.errors import AgentError, DataError, ModelError
from agent.model.manifest import InputSpec, Manifest, read_manifest
from agent.model.pack import pack
from agent.model.signing import write_checksums
from agent.model.validate import validate_package
from agent.train import backend, data, split
from agent.train.config import TrainConfig
from agent.train.export import OnnxRunner, TfliteRunner, export_onnx, export_tflite, representative
from agent.train.metrics import defect_indices, int8_drop, metrics
from agent.train.model import FLOAT_MODEL, Base, base_file, fit, load_base, predict, save, with_new_head
from agent.train.package import reference_block, write_golden
from agent.train.progress import Progress
from agent.train.report import write_report

Say = Callable[[str], None]
TRAINING_DIR = "training"
SOURCES = "sources.json"


@dataclass(frozen=True, slots=True)
class Request:
    data: tuple[Path, ...]
    base: Path
    out: Path
    version: str
    config: TrainConfig
    force: bool = False


@dataclass(slots=True)
class Prepared:
    """The data after merging, deduplication and the stable split, and what was learned doing it."""

    splits: dict[str, data.Samples]
    report: dict[str, Any]
    ledger: tuple[data.Samples, list[str]]


def check_out(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise AgentError(
            f"--out {out} already exists; choose another directory or pass --force to replace it"
        )


def base_manifest(base: Path) -> Manifest | None:
    """The manifest when the base is a package (its labels and preprocessing carry over), else None."""
    return read_manifest(base / "manifest.yaml") if (base / "manifest.yaml").is_file() else None


def input_spec(cfg: TrainConfig, manifest: Manifest | None, shape: tuple[int, int, int]) -> InputSpec:
    """Preprocessing for the new model: the config's, else the base package's, else plain 0..1 pixels."""
    was = manifest.input if manifest is not None else None
    h, w, c = shape
    color = cfg.input.color or (was.color if was else None) or ("GRAY" if c == 1 else "RGB")
    if (color == "GRAY") != (c == 1):
        raise ModelError(f"base model takes {c} channel(s); input color {color} does not fit it")
    return InputSpec(
        width=w,
        height=h,
        color=color,
        resize=cfg.input.resize or (was.resize if was else "stretch"),
        scale=cfg.input.scale if cfg.input.scale is not None else (was.scale if was else 1.0 / 255.0),
        mean=cfg.input.mean or (list(was.mean) if was else [0.0]),
        std=cfg.input.std or (list(was.std) if was else [1.0]),
    )


def data_dirs(req: Request) -> list[Path]:
    """The base package's own training data first (when still on disk and wanted), then the new."""
    dirs: list[Path] = []
    record = req.base / TRAINING_DIR / SOURCES
    if req.config.previous_data and record.is_file():
        dirs += [Path(p) for p in json.loads(record.read_text())["data"] if Path(p).is_dir()]
    for d in req.data:
        if d.resolve() not in [p.resolve() for p in dirs]:
            dirs.append(d)
    return dirs


def check_shapes(found: dict[tuple[int, int, int], int], spec: InputSpec, policy: str) -> str:
    """Frames whose size or channels differ from the model input: resized (reported) or refused."""
    want = (spec.width, spec.height, spec.channels)
    other = {s: n for s, n in found.items() if s != want}
    if not other:
        return ""
    n = sum(other.values())
    shapes = ", ".join(f"{w}x{h}x{c}" for w, h, c in sorted(other, key=lambda s: -other[s])[:3])
    what = f"{n} image(s) are {shapes}, the base model takes {want[0]}x{want[1]}x{want[2]}"
    if policy == "refuse":
        raise DataError(f"{what}; set input_mismatch: resize to resize them as the agent does on the device")
    return f"{what}: resized ({spec.resize}) and converted to {spec.color}, as the agent does"


def prepare(req: Request, spec: InputSpec, base_labels: list[str] | None, say: Say) -> Prepared:
    """Read, merge, deduplicate, check and split every --data directory."""
    cfg, dirs = req.config, data_dirs(req)
    entries = [e for d in dirs for e in data.scan(d)]
    names = data.label_order([e.label for e in entries], base_labels)
    samples, read = data.load(entries, spec, names)
    for line in read.corrupt[:5]:
        say(f"skipped: {line}")
    resized = check_shapes(dict(read.frame_shapes), spec, cfg.input_mismatch)
    merge = split.MergeReport()
    samples = split.deduplicate(samples, cfg.near_duplicate_bits, merge)
    warnings = split.check_classes(samples, cfg.min_per_class, cfg.on_few)
    ledger = split.read_ledger(req.base / TRAINING_DIR / split.LEDGER)
    assignment = split.assign(samples, ledger, tuple(cfg.split), merge)  # type: ignore[arg-type]
    splits = split.by_split(samples, assignment)
    if not len(splits["train"]) or not len(splits["val"]) or not len(splits["test"]):
        sizes = ", ".join(f"{s} {len(v)}" for s, v in splits.items())
        raise DataError(f"not enough images to fill train, val and test ({sizes}); add images")
    report = {
        "sources": [str(d) for d in dirs],
        "files": len(entries),
        "corrupt_skipped": len(read.corrupt),
        "corrupt": read.corrupt,
        "resized": resized,
        "duplicate_ids": merge.duplicate_ids,
        "near_duplicates": merge.near_duplicates,
        "label_conflicts": merge.label_conflicts,
        "split_filled": merge.moved_to_fill,
        "previously_split": sum(i in ledger for i in samples.ids),
        "warnings": warnings,
        "per_class": {s: v.counts() for s, v in splits.items()},
        "per_source": _per_source(samples),
    }
    return Prepared(splits, report, (samples, assignment))


def _per_source(samples: data.Samples) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for origin, label in zip(samples.origins, samples.labels, strict=True):
        counts = out.setdefault(origin, {})
        counts[samples.names[label]] = counts.get(samples.names[label], 0) + 1
    return out


def label_change(base_labels: list[str] | None, names: tuple[str, ...]) -> dict[str, Any]:
    if base_labels is None:
        return {"changed": False, "note": "the base is a bare Keras model: no labels to compare"}
    added = [n for n in names if n not in base_labels]
    removed = [n for n in base_labels if n not in names]
    return {"changed": bool(added or removed) or list(names) != base_labels, "from": base_labels,
            "to": list(names), "added": added, "removed": removed}  # fmt: skip


def train_model(base: Base, prepared: Prepared, cfg: TrainConfig, spec: InputSpec, stream: TextIO) -> Any:
    backend.set_determinism(cfg.seed)
    names = prepared.splits["train"].names
    model = with_new_head(base, len(names), cfg.dropout)
    bar = Progress("training", cfg.epochs, stream, every_s=0.0)

    def on_epoch(r: dict[str, Any]) -> None:
        bar.update(
            r["epoch"], f"loss {r['loss']:.3f} val_loss {r['val_loss']:.3f} val_acc {r['val_accuracy']:.3f}"
        )

    history = fit(
        model, base.features, (prepared.splits["train"], prepared.splits["val"]), cfg, spec, on_epoch
    )
    bar.close("(stopped early)" if history[-1].get("stopped_early") else "")
    return model, history


def evaluate(
    runners: dict[str, Callable[[np.ndarray], np.ndarray]], test: data.Samples, defects: list[int]
) -> dict[str, Any]:
    return {
        name: metrics(run(test.images), test.labels, test.names, defects) for name, run in runners.items()
    }


def running_model(
    base: Path, manifest: Manifest | None, spec: InputSpec, test: data.Samples
) -> dict[str, Any]:
    """The running (base) package's int8 TFLite accuracy on the new test split, by label name."""
    if manifest is None or manifest.input != spec or "tflite" not in manifest.files():
        return {}
    labels = manifest.labels or []
    probs = TfliteRunner(base / manifest.files()["tflite"][0], spec)(test.images)
    said = np.asarray([labels[i] if i < len(labels) else "" for i in probs.argmax(axis=1)])
    truth = np.asarray([test.names[c] for c in test.labels])
    return {"version": manifest.version, "accuracy": round(float((said == truth).mean()), 4)}


def export_models(
    model: Any, prepared: Prepared, cfg: TrainConfig, spec: InputSpec, staging: Path
) -> dict[str, Any]:
    """Both int8 files in ``staging``, calibrated on training images; runners for float and both int8."""
    calibration = representative(prepared.splits["train"].images, cfg.calibration_images, cfg.seed)
    export_tflite(model, calibration, spec, staging / "model.tflite")
    export_onnx(model, calibration, spec, staging / "model.onnx")
    return {
        "float": lambda images: predict(model, images, spec),
        "tflite_int8": TfliteRunner(staging / "model.tflite", spec),
        "onnx_int8": OnnxRunner(staging / "model.onnx", spec),
    }


def manifest_doc(
    req: Request, was: Manifest | None, names: tuple[str, ...], spec: InputSpec
) -> dict[str, Any]:
    cfg = req.config
    defects = [names[c] for c in defect_indices(names, cfg.defect_labels)]
    return {
        "name": cfg.name or (was.name if was else req.base.stem),
        "version": req.version,
        "task": "classification",
        "description": cfg.description or f"Retrained by inspection-agent train from {req.base.name}.",
        "labels": list(names),
        "defect_labels": defects,
        "input": asdict(spec),
        "output": {"activation": "none"},  # the new head ends in a softmax
        "thresholds": {"min_confidence": cfg.min_confidence},
        "budget_ms": cfg.budget_ms,
    }


def _frame(test: data.Samples) -> Callable[[int], np.ndarray]:
    def frame_of(i: int) -> np.ndarray:
        decoded = data.decode(Path(test.sources[i]).read_bytes())
        assert decoded is not None  # it was read once already
        return decoded[0]

    return frame_of


def assemble(req: Request, was: Manifest | None, prepared: Prepared, spec: InputSpec, work: Path,
             runners: dict[str, Any], report: dict[str, Any], model: Any) -> Path:  # fmt: skip
    """Golden set, manifest with drift reference, pack (checksums), then the training record beside it."""
    test, val = prepared.splits["test"], prepared.splits["val"]
    int8 = {"tflite": runners["tflite_int8"], "onnx": runners["onnx_int8"]}
    write_golden(work / "golden-src", test.labels, test.names, _frame(test), int8, spec)
    doc = manifest_doc(req, was, test.names, spec)
    doc["reference"] = reference_block(val.images, val.names, int8["tflite"], "validation", spec.color)
    pkg = work / "package"
    pack(doc, [work / "model.tflite", work / "model.onnx"], pkg, golden=work / "golden-src" / "golden")
    (pkg / "evaluation.json").write_text(json.dumps(report["evaluation_file"], indent=1) + "\n")
    record = pkg / TRAINING_DIR
    write_report(record, report["report"], test.names)
    split.write_ledger(record / split.LEDGER, *prepared.ledger)
    (record / SOURCES).write_text(json.dumps({"data": report["report"]["data"]["sources"]}, indent=1) + "\n")
    save(model, pkg / FLOAT_MODEL)
    write_checksums(pkg)
    return pkg


def check_package(pkg: Path) -> None:
    result = validate_package(pkg, runs=20)
    failed = [f"{c.name}: {c.detail}" for c in result.checks if not c.ok]
    if failed:
        raise ModelError(f"the new package does not validate: {'; '.join(failed)}")


def place(pkg: Path, out: Path, force: bool) -> None:
    """Move the finished package to ``out``; an existing ``out`` is replaced only with --force."""
    check_out(out, force)
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)
    pkg.rename(out)


def _labels(manifest: Manifest | None, base: Path) -> list[str] | None:
    if manifest is None:
        return None
    if manifest.labels is not None:
        return list(manifest.labels)
    lines = (base / str(manifest.labels_file)).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def summarise(req: Request, prepared: Prepared, base: Base, history: list[dict[str, Any]],
              evaluation: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The training report and the package's evaluation.json, from one set of figures."""
    cfg = req.config
    drop = int8_drop(evaluation)
    report = {
        "version": req.version,
        "base": {"path": str(base.path), "params": base.params, "input": list(base.input_shape)},
        "config": asdict(cfg),
        "data": prepared.report,
        "imbalance": {"method": cfg.imbalance, "class_weights": extra["class_weights"]},
        "history": history,
        "epochs_run": len(history),
        "evaluation": evaluation,
        "int8_accuracy_drop": drop,
        "max_int8_drop": cfg.max_int8_drop,
        **extra,
    }
    evaluation_file = {
        "version": req.version,
        "labels": list(prepared.splits["test"].names),
        "seed": cfg.seed,
        "split": {s: len(v) for s, v in prepared.splits.items()},
        **evaluation,
        "int8_accuracy_drop": drop,
        "max_int8_drop": cfg.max_int8_drop,
        "label_change": extra["label_change"],
        "running_model": extra["running_model"],
    }
    return {"report": report, "evaluation_file": evaluation_file}


def reject(work: Path, out: Path, summary: dict[str, Any], names: tuple[str, ...]) -> Path:
    """Keep what a refused run learned (report, curves, int8 files) in ``<out>.rejected``."""
    target = out.with_name(out.name + ".rejected")
    write_report(work / TRAINING_DIR, summary["report"], names)
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    return target


def run(req: Request, say: Say = print, stream: TextIO = sys.stderr) -> dict[str, Any]:
    """Train, quantize, evaluate and package; return the training report."""
    cfg = req.config
    check_out(req.out, req.force)
    base_file(req.base)  # a missing base is reported before TensorFlow even loads
    was = base_manifest(req.base) if req.base.is_dir() else None
    base_labels = _labels(was, req.base)
    base = load_base(req.base)
    spec = input_spec(cfg, was, base.input_shape)
    prepared = prepare(req, spec, base_labels, say)
    _say_data(prepared, say)
    change = label_change(base_labels, prepared.splits["train"].names)
    if change["changed"] and base_labels is not None:
        say(
            f"label change: {base_labels} -> {change['to']} (added {change['added']}, removed {change['removed']})"
        )
    model, history = train_model(base, prepared, cfg, spec, stream)
    work = req.out.parent / f".{req.out.name}.train"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        runners = export_models(model, prepared, cfg, spec, work)
        test = prepared.splits["test"]
        evaluation = evaluate(runners, test, defect_indices(test.names, cfg.defect_labels))
        extra = {
            "label_change": change,
            "running_model": running_model(req.base, was, spec, test),
            "class_weights": _weights(prepared, cfg),
        }
        summary = summarise(req, prepared, base, history, evaluation, extra)
        _say_results(summary["report"], say)
        if summary["report"]["int8_accuracy_drop"] > cfg.max_int8_drop:
            kept = reject(work, req.out, summary, test.names)
            raise ModelError(
                f"int8 accuracy drop {summary['report']['int8_accuracy_drop']:.4f} exceeds max_int8_drop "
                f"{cfg.max_int8_drop}: no package written (report and models kept in {kept})"
            )
        pkg = assemble(req, was, prepared, spec, work, runners, summary, model)
        check_package(pkg)
        place(pkg, req.out, req.force)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"package {req.out}: validates; report in {req.out / TRAINING_DIR}")
    return dict(summary["report"])


def _weights(prepared: Prepared, cfg: TrainConfig) -> dict[str, float] | None:
    if cfg.imbalance != "class_weight":
        return None
    from agent.train.model import class_weights

    train = prepared.splits["train"]
    return {train.names[c]: w for c, w in class_weights(train.labels, len(train.names)).items()}


def _say_data(prepared: Prepared, say: Say) -> None:
    r = prepared.report
    per = ", ".join(f"{s} {sum(c.values())}" for s, c in r["per_class"].items())
    say(f"data: {r['files']} files from {len(r['sources'])} source(s); {per}")
    say(f"  per class (train): {r['per_class']['train']}")
    say(f"  skipped {r['corrupt_skipped']} corrupt image(s); removed {r['duplicate_ids']} duplicate id(s) and "
        f"{r['near_duplicates']} near-duplicate(s); {r['previously_split']} id(s) kept their earlier split")  # fmt: skip
    for line in ([r["resized"]] if r["resized"] else []) + r["warnings"]:
        say(f"  warning: {line}" if line in r["warnings"] else f"  note: {line}")


def _say_results(report: dict[str, Any], say: Say) -> None:
    for name, m in report["evaluation"].items():
        say(f"{name:12s} test accuracy {m['accuracy']:.4f} defect recall {m['defect_recall']:.4f}")
    running = report.get("running_model") or {}
    if running:
        say(f"running model {running['version']}: test accuracy {running['accuracy']:.4f}")
    say(f"int8 accuracy drop {report['int8_accuracy_drop']:.4f} (max {report['max_int8_drop']})")
