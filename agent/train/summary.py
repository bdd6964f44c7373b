"""What a training run reports: the report and evaluation.json figures, and the lines it prints."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from agent.train.config import TrainConfig
from agent.train.metrics import int8_drop
from agent.train.model import Base, class_weights
from agent.train.prepare import TRAINING_DIR, Prepared, Request, Say
from agent.train.report import write_report


def label_change(base_labels: list[str] | None, names: tuple[str, ...]) -> dict[str, Any]:
    if base_labels is None:
        return {"changed": False, "note": "the base is a bare Keras model: no labels to compare"}
    added = [n for n in names if n not in base_labels]
    removed = [n for n in base_labels if n not in names]
    return {"changed": bool(added or removed) or list(names) != base_labels, "from": base_labels,
            "to": list(names), "added": added, "removed": removed}  # fmt: skip


def summarise(
    req: Request, prepared: Prepared, base: Base, history: list[dict[str, Any]], *,
    evaluation: dict[str, Any], extra: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
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


def weights_by_label(prepared: Prepared, cfg: TrainConfig) -> dict[str, float] | None:
    if cfg.imbalance != "class_weight":
        return None
    train = prepared.splits["train"]
    return {train.names[c]: w for c, w in class_weights(train.labels, len(train.names)).items()}


def say_data(prepared: Prepared, say: Say) -> None:
    r = prepared.report
    per = ", ".join(f"{s} {sum(c.values())}" for s, c in r["per_class"].items())
    say(f"data: {r['files']} files from {len(r['sources'])} source(s); {per}")
    say(f"  per class (train): {r['per_class']['train']}")
    say(
        f"  skipped {r['corrupt_skipped']} corrupt image(s); removed {r['duplicate_ids']} duplicate id(s)"
        f" and {r['near_duplicates']} near-duplicate(s); {r['previously_split']} id(s) kept their split"
    )
    for line in ([r["resized"]] if r["resized"] else []) + r["warnings"]:
        say(f"  warning: {line}" if line in r["warnings"] else f"  note: {line}")


def say_results(report: dict[str, Any], say: Say) -> None:
    for name, m in report["evaluation"].items():
        say(f"{name:12s} test accuracy {m['accuracy']:.4f} defect recall {m['defect_recall']:.4f}")
    running = report.get("running_model") or {}
    if running:
        say(f"running model {running['version']}: test accuracy {running['accuracy']:.4f}")
    say(f"int8 accuracy drop {report['int8_accuracy_drop']:.4f} (max {report['max_int8_drop']})")
