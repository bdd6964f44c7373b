"""Time ``inspection-agent train`` on this machine: a MobileNet-class base, 2,000 images, 96-160 px.

Nothing is downloaded: the base (MobileNet v1, agent.train.zoo) is built and pre-trained
here on one synthetic task, then retrained on another with a new defect class, exactly as
``inspection-agent train`` runs (data reading, training with early stopping, int8 TFLite
and ONNX export, evaluation, package, validation). Prints the time per epoch and the total.

    python scripts/bench_train.py                        # 2,000 images at 128 px, width 0.5
    python scripts/bench_train.py --size 96 --alpha 1.0  # the 3.2 M-parameter MobileNet
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from agent.train.config import TrainConfig
from agent.train.prepare import Request
from agent.train.retrain import run
from agent.train.zoo import pretrain, synthetic_folder

OLD = ("ok", "spot", "hole")
NEW = ("ok", "spot", "hole", "scratch", "crack")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=2000, help="retraining images (default 2000)")
    p.add_argument("--size", type=int, default=128, help="model input side, pixels (default 128)")
    p.add_argument("--alpha", type=float, default=0.5, help="MobileNet width (0.5: 0.8 M params, 1.0: 3.2 M)")
    p.add_argument("--epochs", type=int, default=6, help="retraining epochs (default 6)")
    p.add_argument("--pretrain-images", type=int, default=600)
    p.add_argument("--pretrain-epochs", type=int, default=2)
    p.add_argument("--workdir", type=Path, help="keep the data and packages here (default: a temp dir)")
    return p.parse_args(argv)


def bench(args: argparse.Namespace, work: Path) -> None:
    frame = (args.size * 4 // 3, args.size)  # 4:3 frames, stretched to the square input as the agent does
    started = time.monotonic()
    old = synthetic_folder(work / "old", OLD, args.pretrain_images // len(OLD), frame, seed=1)
    new = synthetic_folder(work / "new", NEW, args.images // len(NEW), frame, seed=2, suffix=".jpg")
    print(f"rendered {args.pretrain_images} + {args.images} images ({time.monotonic() - started:.0f} s)")
    t0 = time.monotonic()
    base = pretrain(old, OLD, work / "base.keras", size=args.size, alpha=args.alpha, blocks=13,
                    epochs=args.pretrain_epochs)  # fmt: skip
    print(f"pre-trained the base ({time.monotonic() - t0:.0f} s, not part of the figures below)")
    cfg = TrainConfig(name="bench", epochs=args.epochs, freeze_epochs=1, patience=args.epochs,
                      max_int8_drop=1.0, min_per_class=10, budget_ms=1000.0)  # fmt: skip
    request = Request((new,), base, work / "pkg", "2.0.0", cfg, force=True)
    t1 = time.monotonic()
    report = run(request, say=lambda line: None, stream=sys.stderr)
    total = time.monotonic() - t1
    seconds = [r["seconds"] for r in report["history"]]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}"
    )
    print(f"base: MobileNet v1 width {args.alpha}, {report['base']['params']:,} parameters, "
          f"input {args.size}x{args.size}x1")  # fmt: skip
    print(f"data: {args.images} images, {sum(report['data']['per_class']['train'].values())} trained on")
    for r in report["history"]:
        print(
            f"  epoch {r['epoch']} ({r['phase']}): {r['seconds']:.1f} s, val_accuracy {r['val_accuracy']:.3f}"
        )
    print(f"time per epoch: {sum(seconds) / len(seconds):.1f} s (mean of {len(seconds)})")
    print(f"training: {sum(seconds):.0f} s; total (read, train, int8 export, evaluate, package, validate): "
          f"{total:.0f} s")  # fmt: skip
    print(f"int8 TFLite test accuracy {report['evaluation']['tflite_int8']['accuracy']:.3f}, "
          f"int8 drop {report['int8_accuracy_drop']:.3f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        bench(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
            bench(args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
