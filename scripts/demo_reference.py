"""Recompute the drift ``reference`` block of the committed demo package, nothing else.

The reference gained a per-class part (``by_class``, docs/health.md) after the demo
model was trained. Retraining would change the weights; this re-runs the committed
int8 TFLite model on the same held-out camera renders the training script used
(``camera_dataset(seed, per_class)``) and rewrites only ``reference`` in
``manifest.yaml``. The model files, and so the manifest's sha256 values, are untouched.

    python scripts/demo_reference.py [--package models/demo-defects/1.0.0] [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from agent.train.export import TfliteRunner
from scripts import demo_data, demo_package

DEFAULT = Path(__file__).resolve().parents[1] / "models" / "demo-defects" / "1.0.0"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--package", type=Path, default=DEFAULT)
    p.add_argument("--check", action="store_true", help="exit 1 if the committed block differs")
    args = p.parse_args(argv)
    manifest = args.package / "manifest.yaml"
    doc = yaml.safe_load(manifest.read_text())
    evaluation = json.loads((args.package / "evaluation.json").read_text())
    per_class = evaluation["camera_640x480_samples"] // len(evaluation["labels"])
    camera = demo_data.camera_dataset(int(evaluation["seed"]), per_class)
    runner = TfliteRunner(args.package / "model.tflite", demo_package.SPEC)
    block = demo_package.reference_block(camera, runner, "camera_640x480")
    if args.check:
        same = doc.get("reference") == block
        print("reference block up to date" if same else "reference block differs")
        return 0 if same else 1
    doc["reference"] = block
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110))
    print(f"{manifest}: reference recomputed ({len(block['by_class'])} classes with their own figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
