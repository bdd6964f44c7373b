"""Train the demo defect classifier and write its model package (manifest, int8 TFLite + ONNX, golden set).

Examples (run from the repository root)::

    python scripts/train_demo.py                          # regenerates models/demo-defects/1.0.0
    python scripts/train_demo.py --quick --out /tmp/demo   # a tiny throw-away model, < 60 s, for tests
    python scripts/train_demo.py --data imagefolder:collected --data synthetic \\
        --out models/demo-defects/1.1.0 --version 1.1.0    # retrain on frames collected from the line

``imagefolder:DIR`` reads ``DIR/{train,val,test}/{label}/*.png|jpg`` (or
``DIR/{label}/*`` split 70/15/15 here); labels must be among the demo labels.
The same command always writes the same files.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# Run as a file (python scripts/x.py): put the repository root on the path so `agent` and `scripts` import.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF C++ logs: fatal only; failures still raise

from agent.synthetic import LABELS
from agent.train import backend
from agent.train.export import OnnxRunner, TfliteRunner, export_onnx, export_tflite, representative
from agent.train.metrics import int8_drop, metrics
from scripts import demo_data, demo_model, demo_package
from scripts.demo_data import Dataset

DEFAULT_OUT = Path("models/demo-defects/1.0.0")
QUICK_SIZES = ((160, 120, 0.5), (320, 240, 0.3), (96, 96, 0.2))
MIN_DEFECT_RECALL = 0.95
MAX_INT8_ACCURACY_DROP = 0.02
MIN_ACCURACY = 0.85  # ours: a model that calls everything a defect has perfect defect recall


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data",
        action="append",
        metavar="SOURCE",
        help="'synthetic' or 'imagefolder:DIR'; repeat to combine (default: synthetic)",
    )
    p.add_argument("--per-class", type=int, help="synthetic frames per label (default 1000; --quick 80)")
    p.add_argument(
        "--camera-per-class",
        type=int,
        help="extra 640x480 camera renders per label, evaluation only (default 100; --quick 10)",
    )
    p.add_argument("--epochs", type=int, help="default 12; --quick 10")
    p.add_argument("--batch-size", type=int, help="default 64; --quick 16 (more steps from little data)")
    p.add_argument("--seed", type=int, default=2007)
    p.add_argument(
        "--out", type=Path, help=f"package directory (default {DEFAULT_OUT}; required with --quick)"
    )
    p.add_argument("--name", default="demo-defects")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--workers", type=int, help="processes rendering synthetic frames (default: all cores)")
    p.add_argument("--quick", action="store_true", help="tiny data and few epochs: checks the pipeline only")
    p.add_argument("--strict", action="store_true", help="exit 1 when the evaluation misses the targets")
    args = p.parse_args(argv)
    if args.quick and args.out is None:
        p.error("--quick needs --out: it must not overwrite the committed package")
    args.out = args.out or DEFAULT_OUT
    args.data = args.data or ["synthetic"]
    args.per_class = args.per_class or (80 if args.quick else 1000)
    args.camera_per_class = args.camera_per_class or (10 if args.quick else 100)
    args.epochs = args.epochs or (10 if args.quick else 12)
    args.batch_size = args.batch_size or (16 if args.quick else 64)
    for source in args.data:
        if source != "synthetic" and not source.startswith("imagefolder:"):
            p.error(f"--data {source!r}: expected 'synthetic' or 'imagefolder:DIR'")
    return args


def load_splits(args: argparse.Namespace) -> tuple[dict[str, Dataset], Dataset | None]:
    """Train/val/test from every source, plus the camera evaluation set when synthetic data is used."""
    parts: dict[str, list[Dataset]] = {s: [] for s in demo_data.SPLITS}
    camera = None
    for source in args.data:
        if source == "synthetic":
            sizes = QUICK_SIZES if args.quick else demo_data.DEFAULT_SIZES
            ds = demo_data.synthetic_dataset(args.seed, args.per_class, sizes, args.workers)
            for split, idx in demo_data.stratified_split(ds.labels, args.seed).items():
                parts[split].append(ds.subset(idx))
            camera = demo_data.camera_dataset(args.seed, args.camera_per_class)
        else:
            for split, ds in demo_data.read_imagefolder(Path(source.partition(":")[2]), args.seed).items():
                parts[split].append(ds)
    return fill_missing_splits({s: Dataset.concat(v) for s, v in parts.items()}, args.seed), camera


def fill_missing_splits(splits: dict[str, Dataset], seed: int) -> dict[str, Dataset]:
    """Exports with no validation or test split (an 80/20 export, a small collection) still train.

    No validation split: 15 % of the training images are held out instead. No
    test split: the validation split doubles as test, and the card says so.
    """
    if not len(splits["train"]):
        raise SystemExit("error: no training images; give every source enough images per label")
    if not len(splits["val"]):
        parts = demo_data.stratified_split(splits["train"].labels, seed)
        keep = np.concatenate([parts["train"], parts["test"]])
        splits["train"], splits["val"] = (
            splits["train"].subset(np.sort(keep)),
            splits["train"].subset(parts["val"]),
        )
        print("note: no validation images given; held out 15 % of the training images")
    if not len(splits["test"]):
        splits["test"] = splits["val"]
        print("note: no test images given; the test figures are on the validation split")
    return splits


def evaluate(runners: dict[str, Any], test: Dataset, camera: Dataset | None) -> dict[str, Any]:
    out = {}
    for name, run in runners.items():
        result = metrics(run(test.images), test.labels, LABELS)
        if camera is not None:
            result["camera_640x480"] = metrics(run(camera.images), camera.labels, LABELS)
        out[name] = result
        cam = result.get("camera_640x480", {})
        print(
            f"{name:12s} test acc {result['accuracy']:.4f} defect recall {result['defect_recall']:.4f}"
            f" | camera acc {cam.get('accuracy', float('nan')):.4f}"
        )
    return out


def check_targets(results: dict[str, Any]) -> dict[str, Any]:
    """The release bar: every variant finds defects, quantization costs at most two points of accuracy."""
    sets = [results[v] for v in results] + [
        results[v]["camera_640x480"] for v in results if "camera_640x480" in results[v]
    ]
    recall_ok = all(r["defect_recall"] >= MIN_DEFECT_RECALL for r in sets)
    drop = int8_drop(results)
    accuracy_ok = results["float"]["accuracy"] >= MIN_ACCURACY
    return {
        "min_accuracy": MIN_ACCURACY,
        "min_defect_recall": MIN_DEFECT_RECALL,
        "max_int8_accuracy_drop": MAX_INT8_ACCURACY_DROP,
        "int8_accuracy_drop": round(drop, 4),
        "met": bool(accuracy_ok and recall_ok and drop <= MAX_INT8_ACCURACY_DROP),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = time.monotonic()
    splits, camera = load_splits(args)
    print(
        f"data: {', '.join(f'{s} {len(d)}' for s, d in splits.items())} ({time.monotonic() - started:.0f} s)"
    )

    backend.set_determinism(args.seed)
    model = demo_model.build_model(len(LABELS))
    demo_model.train(
        model, splits["train"], splits["val"], epochs=args.epochs, batch_size=args.batch_size, seed=args.seed
    )

    print(f"trained ({time.monotonic() - started:.0f} s)")
    out: Path = args.out
    (out / "golden").mkdir(parents=True, exist_ok=True)
    for stale in (out / "golden").glob("*.png"):
        stale.unlink()
    calibration = representative(splits["train"].images, 64 if args.quick else 300, args.seed)
    export_tflite(model, calibration, demo_model.SPEC, out / "model.tflite")
    export_onnx(model, calibration, demo_model.SPEC, out / "model.onnx")
    tflite = TfliteRunner(out / "model.tflite", demo_model.SPEC)
    onnx = OnnxRunner(out / "model.onnx", demo_model.SPEC)

    def run_float(images: Any) -> Any:
        return demo_model.predict_float(model, images)

    results = evaluate({"float": run_float, "tflite_int8": tflite, "onnx_int8": onnx}, splits["test"], camera)
    evaluation = {
        "name": args.name,
        "version": args.version,
        "labels": list(LABELS),
        "seed": args.seed,
        "command": shlex.join(["python", "scripts/train_demo.py", *argv]),
        "data": list(args.data),
        "split": {s: len(d) for s, d in splits.items()},
        "camera_640x480_samples": len(camera) if camera is not None else 0,
        **results,
        "targets": check_targets(results),
    }
    demo_package.write_evaluation(out, evaluation)
    demo_package.write_golden(out, splits["test"], {"tflite": tflite, "onnx": onnx})
    # Drift compares the line against what the camera shows: the held-out 640x480 camera renders when
    # there are any (the validation split mixes crop sizes no camera produces), else the validation split.
    if camera is not None:
        reference = demo_package.reference_block(camera, tflite, split="camera_640x480")
    else:
        reference = demo_package.reference_block(splits["val"], tflite, split="validation")
    demo_package.write_manifest(out, args.name, args.version, reference)
    demo_package.write_readme(out, evaluation, int(model.count_params()))
    met = evaluation["targets"]["met"]
    print(
        f"package {out}: targets {'met' if met else 'MISSED'}; wall time {time.monotonic() - started:.0f} s"
    )
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
