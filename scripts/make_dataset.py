"""Write a synthetic DAGM-style dataset to disk, in the image-folder layout train_demo.py reads.

    python scripts/make_dataset.py --out data/synthetic --per-class 200 --seed 2007
    python scripts/make_dataset.py --out data/cam --per-class 50 --size 640x480 --format jpg

Layout: ``OUT/{train,val,test}/{label}/{label}_{index:05d}.png`` (stratified
70/15/15) and ``OUT/labels.csv`` (path, label, split, width, height, severity,
jpeg_quality). The frames are exactly the ones ``train_demo.py`` renders in
memory for the same seed, so ``--data imagefolder:OUT`` trains on the same data.
Deterministic: same arguments, same files.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

# Run as a file (python scripts/x.py): put the repository root on the path so `agent` and `scripts` import.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from agent.synthetic import LABELS
from scripts.demo_data import DEFAULT_SIZES, Recipe, parse_size, recipes, render_sample, stratified_split

FIELDS = ("path", "label", "split", "width", "height", "severity", "jpeg_quality")


def _write_one(job: tuple[Recipe, str, Path, tuple[tuple[int, int, float], ...], str]) -> dict[str, Any]:
    recipe, split, out, sizes, fmt = job
    cv2.setNumThreads(1)  # one process per core already
    image, info = render_sample(recipe, sizes)
    rel = Path(split) / recipe.label / f"{recipe.label}_{recipe.index:05d}.{fmt}"
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
    if not cv2.imwrite(str(out / rel), image, params):
        raise RuntimeError(f"cannot write {out / rel}")
    return {"path": rel.as_posix(), "label": recipe.label, "split": split, **info}


def make_dataset(
    out: Path, per_class: int, seed: int, sizes: tuple[tuple[int, int, float], ...], fmt: str = "png"
) -> list[dict[str, Any]]:
    """Render and write every frame; return the rows of labels.csv."""
    todo = recipes(seed, per_class)
    labels = np.array([LABELS.index(r.label) for r in todo])
    split_of = {int(i): split for split, idx in stratified_split(labels, seed).items() for i in idx}
    for split in ("train", "val", "test"):
        for label in LABELS:
            (out / split / label).mkdir(parents=True, exist_ok=True)
    jobs = [(r, split_of[i], out, sizes, fmt) for i, r in enumerate(todo)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        rows = list(pool.map(_write_one, jobs, chunksize=16))
    with (out / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--seed", type=int, default=2007)
    p.add_argument(
        "--size",
        action="append",
        metavar="WxH",
        help="frame size; repeat for several, drawn equally often (default: the training mix)",
    )
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="png is lossless; jpg is smaller")
    args = p.parse_args(argv)
    try:
        sizes = tuple((*parse_size(s), 1.0) for s in args.size) if args.size else DEFAULT_SIZES
    except ValueError as exc:
        p.error(str(exc))
    rows = make_dataset(args.out, args.per_class, args.seed, sizes, args.format)
    print(f"{args.out}: {len(rows)} images, labels in {args.out / 'labels.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
