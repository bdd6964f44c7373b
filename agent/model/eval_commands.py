"""``inspection-agent model evaluate`` and ``model compare`` (registered by agent.model.commands).

Exit codes: 0 done (compare: the gate passed), 1 compare ran and the gate failed,
2 bad usage or input (unknown class, bad gate file), 3 a package could not be loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="accuracy, per-class and per-line figures on a labeled folder")
    e.add_argument("path", help="package directory or .tar.gz")
    _common(e)
    e.add_argument("--confusion-png", type=Path, metavar="FILE", help="also draw the confusion matrix")
    e.set_defaults(func=_evaluate)
    c = sub.add_parser("compare", help="champion vs challenger on the same frames, against a gate file")
    c.add_argument("champion", help="the model in service (package directory or .tar.gz)")
    c.add_argument("challenger", help="the candidate")
    _common(c)
    c.add_argument("--gate", type=Path, required=True, help="gate YAML: the targets the challenger must meet")
    c.add_argument("--out", type=Path, help="also write the JSON report here (for deploy --require-gate)")
    c.set_defaults(func=_compare)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="dataset export or {label}/* image folder")
    p.add_argument("--split", default="test", help="export split to use (default test; 'all' for every one)")
    p.add_argument("--runtime", choices=["tflite", "onnx"], help="only this runtime file")
    p.add_argument("--label-map", action="append", default=[], metavar="FROM=TO", help="rename labels")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _evaluate(args: argparse.Namespace) -> int:
    from agent.model.commands import package_dir
    from agent.model.confusion import write_confusion_png
    from agent.model.evaldata import parse_label_map, read_eval_set
    from agent.model.evaluate import evaluate

    data = read_eval_set(args.data, args.split, parse_label_map(args.label_map))
    with package_dir(args.path) as root:
        report = evaluate(root, data, args.runtime, progress=not args.no_progress)
    if args.confusion_png:
        c = report["confusion"]
        pkg = report["package"]
        write_confusion_png(args.confusion_png, c["labels"], c["matrix"], f"{pkg['name']} {pkg['version']}")
        report["confusion_png"] = str(args.confusion_png)
    _out(json.dumps(report, sort_keys=True) if args.json else "\n".join(_evaluation_lines(report)))
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _evaluation_lines(r: dict[str, Any]) -> list[str]:
    d, pkg = r["data"], r["package"]
    lines = [
        f"{pkg['name']} {pkg['version']} ({r['runtime']}, {r['precision']}) on {d['root']} ({d['layout']}):"
        f" {d['evaluated']} frames, {d['skipped']} skipped",
        f"accuracy {_fmt(r['accuracy'])} (95 % CI {r['accuracy_ci95'][0]:.4f}-{r['accuracy_ci95'][1]:.4f})"
        f"  defect recall {_fmt(r['defect_recall'])}  defect precision {_fmt(r['defect_precision'])}"
        f"  p99 {r['latency_ms']['p99']} ms",
        "label        precision  recall     f1         support",
    ]
    lines += [
        f"{k:12s} {_fmt(v['precision']):10s} {_fmt(v['recall']):10s} {_fmt(v['f1']):10s} {v['support']}"
        for k, v in r["per_class"].items()
    ]
    for key, groups in r["by"].items():
        for name, g in groups.items():
            lines.append(
                f"{key} {name}: {g['samples']} frames, accuracy {_fmt(g['accuracy'])},"
                f" defect recall {_fmt(g['defect_recall'])}"
            )
    lines += [f"skipped {s['path']}: {s['reason']}" for s in d["skipped_files"]]
    lines += [f"warning: class {c!r} has no images (its recall is not measured)" for c in d["empty_classes"]]
    if r["int8_gap"]:
        g = r["int8_gap"]
        lines.append(f"int8 gap ({g['float']} float - {g['int8']} int8): accuracy {g.get('accuracy')}")
    return lines


def _compare(args: argparse.Namespace) -> int:
    from agent.model.commands import package_dir
    from agent.model.compare import compare
    from agent.model.evaldata import read_eval_set
    from agent.model.gate import load_gate

    gate = load_gate(args.gate)
    data = read_eval_set(args.data, args.split)
    mapping = _label_map(args.label_map)
    with package_dir(args.champion) as first, package_dir(args.challenger) as second:
        report = compare(
            first, second, data, gate, runtime=args.runtime, label_map=mapping, progress=not args.no_progress
        )
    report["gate"]["file"] = str(args.gate)
    if args.out:
        args.out.write_text(json.dumps(report, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    _out(json.dumps(report, sort_keys=True) if args.json else "\n".join(_compare_lines(report)))
    return 0 if report["passed"] else 1


def _label_map(pairs: list[str]) -> dict[str, str]:
    from agent.model.evaldata import parse_label_map

    return parse_label_map(pairs)


def _compare_lines(r: dict[str, Any]) -> list[str]:
    a, b, p = r["champion_figures"], r["challenger_figures"], r["paired"]
    lo, hi = p["accuracy_diff_ci95"]
    lines = [
        f"champion   {r['champion']['name']} {r['champion']['version']}: accuracy {_fmt(a['accuracy'])},"
        f" defect recall {_fmt(a['defect_recall'])}, p99 {a['latency_ms']['p99']} ms",
        f"challenger {r['challenger']['name']} {r['challenger']['version']}: accuracy {_fmt(b['accuracy'])},"
        f" defect recall {_fmt(b['defect_recall'])}, p99 {b['latency_ms']['p99']} ms",
        f"paired over {p['frames']} frames: accuracy {p['accuracy_diff']:+.4f}"
        f" (95 % CI {lo:+.4f} to {hi:+.4f}), McNemar p = {p['mcnemar']['p_value']:.4g}",
    ]
    for line, d in r["per_line"].items():
        lines.append(f"line {line}: accuracy {d['accuracy_diff']:+.4f} over {d['frames']} frames")
    lines += [f"FAIL {c['message']}" for c in r["gate"]["failed"]]
    lines.append("PASS" if r["passed"] else f"FAIL: {len(r['gate']['failed'])} gate criteria not met")
    return lines
