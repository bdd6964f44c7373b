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

import numpy as np

from agent.errors import AgentError, ModelError
from agent.model.manifest import InputSpec, Manifest, read_manifest
from agent.model.pack import pack
from agent.model.signing import write_checksums
from agent.model.validate import validate_package
from agent.train import backend, data, split
from agent.train.config import TrainConfig
from agent.train.export import OnnxRunner, TfliteRunner, export_onnx, export_tflite, representative
from agent.train.metrics import defect_indices, metrics
from agent.train.model import FLOAT_MODEL, Base, base_file, fit, load_base, predict, save, with_new_head
from agent.train.package import reference_block, write_golden
from agent.train.prepare import SOURCES, TRAINING_DIR, Prepared, Request, Say, prepare
from agent.train.progress import Progress
from agent.train.report import write_report
from agent.train.summary import label_change, reject, say_data, say_results, summarise, weights_by_label

Runners = dict[str, Callable[[np.ndarray], np.ndarray]]


@dataclass(frozen=True, slots=True)
class Job:
    """What every later step needs: the request, the base package's manifest (if any), the data."""

    req: Request
    was: Manifest | None
    spec: InputSpec
    prepared: Prepared


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
        model, base.features, (prepared.splits["train"], prepared.splits["val"]), cfg, spec, on_epoch=on_epoch
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


def export_models(model: Any, job: Job, staging: Path) -> Runners:
    """Both int8 files in ``staging``, calibrated on training images; runners for float and both int8."""
    cfg, spec = job.req.config, job.spec
    calibration = representative(job.prepared.splits["train"].images, cfg.calibration_images, cfg.seed)
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


def assemble(job: Job, work: Path, *, runners: Runners, report: dict[str, Any], model: Any) -> Path:
    """Golden set, manifest with drift reference, pack (checksums), then the training record beside it."""
    req, prepared, spec = job.req, job.prepared, job.spec
    test, val = prepared.splits["test"], prepared.splits["val"]
    int8 = {"tflite": runners["tflite_int8"], "onnx": runners["onnx_int8"]}
    write_golden(work / "golden-src", test.labels, test.names, _frame(test), int8, spec=spec)
    doc = manifest_doc(req, job.was, test.names, spec)
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


def run(req: Request, say: Say = print, stream: TextIO = sys.stderr) -> dict[str, Any]:
    """Train, quantize, evaluate and package; return the training report."""
    check_out(req.out, req.force)
    base_file(req.base)  # a missing base is reported before TensorFlow even loads
    was = base_manifest(req.base) if req.base.is_dir() else None
    base_labels = _labels(was, req.base)
    base = load_base(req.base)
    spec = input_spec(req.config, was, base.input_shape)
    job = Job(req, was, spec, prepare(req, spec, base_labels, say))
    say_data(job.prepared, say)
    change = label_change(base_labels, job.prepared.splits["train"].names)
    if change["changed"] and base_labels is not None:
        say(f"label change: {change['from']} -> {change['to']} (added {change['added']}, "
            f"removed {change['removed']}); flash-model will announce it")  # fmt: skip
    model, history = train_model(base, job.prepared, req.config, spec, stream)
    work = req.out.parent / f".{req.out.name}.train"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        report = finish(job, work, (model, base, history), change, say)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"package {req.out}: validates; report in {req.out / TRAINING_DIR}")
    return report


def finish(
    job: Job, work: Path, trained: tuple[Any, Base, list[dict[str, Any]]], change: dict[str, Any], say: Say
) -> dict[str, Any]:
    """Export, evaluate, refuse an int8 gap over the limit, package, validate, move into place."""
    req, cfg, test = job.req, job.req.config, job.prepared.splits["test"]
    model, base, history = trained
    runners = export_models(model, job, work)
    evaluation = evaluate(runners, test, defect_indices(test.names, cfg.defect_labels))
    extra = {
        "label_change": change,
        "running_model": running_model(req.base, job.was, job.spec, test),
        "class_weights": weights_by_label(job.prepared, cfg),
    }
    summary = summarise(req, job.prepared, base, history, evaluation=evaluation, extra=extra)
    say_results(summary["report"], say)
    drop = summary["report"]["int8_accuracy_drop"]
    if drop > cfg.max_int8_drop:
        kept = reject(work, req.out, summary, test.names)
        raise ModelError(
            f"int8 accuracy drop {drop:.4f} exceeds max_int8_drop {cfg.max_int8_drop}: "
            f"no package written (report and models kept in {kept})"
        )
    pkg = assemble(job, work, runners=runners, report=summary, model=model)
    check_package(pkg)
    place(pkg, req.out, req.force)
    return dict(summary["report"])
