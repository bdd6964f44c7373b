"""``inspection-agent model import PATH --out DIR``: build a package from an export, then validate it.

Prints what was inferred from the export and what was guessed (each guess names the
option that overrides it), packs, and runs ``model validate`` on the result. Exit codes as
``model validate``: 0 valid, 1 validation failed, 3 the export could not be imported.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from agent.errors import ConfigError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "import",
        help="build a package from an Ultralytics, Teachable Machine, Edge Impulse, Keras or ONNX export",
    )
    p.add_argument("path", type=Path, help="the export: a model file, or the unzipped export folder")
    p.add_argument("--out", type=Path, required=True, help="package directory to create (must not exist)")
    p.add_argument("--labels", help="label file (one per line, or '0 Name' lines) or comma-separated names")
    p.add_argument("--name")
    p.add_argument("--version")
    p.add_argument("--budget-ms", type=float, help="latency budget per frame (default 1000, a guess)")
    p.add_argument("--defect-labels", help="comma-separated")
    p.add_argument("--input-size", metavar="WxH", help="for an input whose size is dynamic")
    p.add_argument("--color", choices=["RGB", "BGR", "GRAY"])
    p.add_argument("--resize", choices=["stretch", "letterbox", "center_crop"])
    p.add_argument("--scale", type=float)
    p.add_argument("--mean", help="comma-separated, 1 or one per channel")
    p.add_argument("--std", help="comma-separated, 1 or one per channel")
    p.add_argument("--runs", type=int, default=50, help="timed runs of the validation (default 50)")
    p.add_argument("--tar", action="store_true", help="also write OUT.tar.gz")
    p.set_defaults(func=import_cmd)


def _options(args: argparse.Namespace) -> Any:
    from agent.model.importers.base import ImportOptions
    from agent.model.importers.labels import parse_labels

    def floats(text: str | None) -> tuple[float, ...] | None:
        if text is None:
            return None
        try:
            return tuple(float(v) for v in text.split(","))
        except ValueError as exc:
            raise ConfigError(f"not a comma-separated list of numbers: {text!r}") from exc

    size = None
    if args.input_size:
        w, sep, h = args.input_size.lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit():
            raise ConfigError(f"--input-size must look like 224x224, got {args.input_size!r}")
        size = (int(w), int(h))
    defects = tuple(v.strip() for v in args.defect_labels.split(",")) if args.defect_labels else None
    return ImportOptions(
        labels=parse_labels(args.labels) if args.labels else None,
        name=args.name, version=args.version, budget_ms=args.budget_ms, defect_labels=defects,
        color=args.color, scale=args.scale, mean=floats(args.mean), std=floats(args.std),
        resize=args.resize, input_size=size,
    )  # fmt: skip


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def import_cmd(args: argparse.Namespace) -> int:
    from agent.model.importers import plan_import
    from agent.model.pack import make_tarball, pack
    from agent.model.validate import validate_package

    opts = _options(args)
    with tempfile.TemporaryDirectory(prefix="inspection-import-") as tmp:
        plan = plan_import(args.path, opts, Path(tmp))
        _say(f"importing {args.path} ({plan.tool})")
        for line in plan.notes.inferred:
            _say(f"  inferred: {line}")
        for line in plan.notes.guessed:
            _say(f"  guessed:  {line}")
        result = pack(plan.doc, [plan.model_file], args.out)
    _say(f"packed {result.root}")
    report = validate_package(result.root, runs=args.runs)
    for check in report.checks:
        _say(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    _say(f"{'PASS' if report.ok else 'FAIL'}: {result.root}")
    if args.tar:
        _say(f"wrote {make_tarball(result.root)}")
    return 0 if report.ok else 1
