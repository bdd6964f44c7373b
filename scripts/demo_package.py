"""Writes a model package in the layout the agent's loader reads: manifest, models, golden set, card.

Everything written here is a pure function of the models and the data, so the
same command produces the same files (no timestamps, no wall times).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from agent.synthetic import DEFECT_LABELS, LABELS
from agent.train import package as shared
from agent.train.package import Runner, dumps, sha256
from scripts.demo_data import INPUT_SIZE, SCALE, Dataset, Recipe, render_sample
from scripts.demo_model import SPEC

GOLDEN_SIZE = (128, 96)  # golden PNGs: small, 4:3 like the camera, so the loader's resize is exercised
MIN_CONFIDENCE = 0.5
BUDGET_MS = 50


def _source_image(source: str) -> np.ndarray:
    """The full-size BGR frame a sample was made from: re-rendered if synthetic, read if a file."""
    if source.startswith("synthetic:"):
        _, seed, label, index = source.split(":")
        return render_sample(Recipe(int(seed), label, int(index)))[0]
    return np.asarray(cv2.imread(source, cv2.IMREAD_COLOR), np.uint8)


def write_golden(out: Path, test: Dataset, runners: dict[str, Runner]) -> dict[str, Any]:
    """Two test images per class both int8 models get right with a clear margin (agent.train's picker)."""
    return shared.write_golden(
        out,
        test.labels,
        LABELS,
        lambda i: _source_image(test.sources[i]),
        runners,
        spec=SPEC,
        size=GOLDEN_SIZE,
    )


def reference_block(val: Dataset, tflite: Runner, split: str) -> dict[str, Any]:
    return shared.reference_block(val.images, LABELS, tflite, split, "GRAY")


def write_manifest(out: Path, name: str, version: str, reference: dict[str, Any]) -> dict[str, Any]:
    manifest = {
        "name": name,
        "version": version,
        "task": "classification",
        "description": "Demo surface-defect classifier (ok/scratch/spot/crack/hole) trained on synthetic "
        "DAGM-2007-style textures; int8 TFLite and int8 QDQ ONNX of the same weights.",
        "file": {"tflite": "model.tflite", "onnx": "model.onnx"},
        "sha256": {"tflite": sha256(out / "model.tflite"), "onnx": sha256(out / "model.onnx")},
        "labels": list(LABELS),
        "defect_labels": list(DEFECT_LABELS),
        "input": {
            "width": INPUT_SIZE,
            "height": INPUT_SIZE,
            "layout": "NHWC",
            "color": "GRAY",
            "resize": "stretch",
            "scale": SCALE,
            "mean": [0.0],
            "std": [1.0],
        },
        "output": {"activation": "none"},  # the network ends in a softmax already
        "thresholds": {"min_confidence": MIN_CONFIDENCE},
        "budget_ms": BUDGET_MS,
        "golden": "golden",
        "reference": reference,
    }
    text = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None, width=110)
    (out / "manifest.yaml").write_text(text)
    (out / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return manifest


def write_evaluation(out: Path, evaluation: dict[str, Any]) -> None:
    (out / "evaluation.json").write_text(dumps(evaluation))


def _row(name: str, m: dict[str, Any]) -> str:
    return f"| {name} | {m['accuracy']:.4f} | {m['defect_recall']:.4f} | {m['defect_precision']:.4f} |"


def write_readme(out: Path, evaluation: dict[str, Any], params: int) -> None:
    """The model card, generated so its figures always match evaluation.json."""
    variants = ("float", "tflite_int8", "onnx_int8")
    test_rows = "\n".join(_row(v, evaluation[v]) for v in variants)
    cam = [v for v in variants if "camera_640x480" in evaluation[v]]
    cam_rows = "\n".join(_row(v, evaluation[v]["camera_640x480"]) for v in cam)
    per_class = "\n".join(
        f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for label, m in evaluation["tflite_int8"]["per_class"].items()
    )
    sizes = {f: (out / f).stat().st_size for f in ("model.tflite", "model.onnx")}
    split = evaluation["split"]
    text = _README.format(
        name=evaluation["name"],
        version=evaluation["version"],
        command=evaluation["command"],
        seed=evaluation["seed"],
        data=", ".join(evaluation["data"]),
        params=params,
        train=split["train"],
        val=split["val"],
        test=split["test"],
        test_rows=test_rows,
        per_class=per_class,
        cam_rows=cam_rows or "| (no synthetic data in this run) | | | |",
        tflite_kb=sizes["model.tflite"] / 1024,
        onnx_kb=sizes["model.onnx"] / 1024,
        met="met" if evaluation["targets"]["met"] else "missed",
        drop=evaluation["targets"]["int8_accuracy_drop"],
    )
    (out / "README.md").write_text(text)


_README = """# {name} {version}

Demo surface-defect classifier for the edge inspection agent. Five classes: `ok`,
`scratch`, `spot`, `crack`, `hole`. It exists so the agent can be tried end to end
without a real line: the agent's `synthetic:` camera and `scripts/make_demo_clip.py`
render frames from the same generator it was trained on.

## Data

Synthetic, DAGM-2007-style (`agent/synthetic/parts.py`): five texture families
(fine noise, brushed metal, woven fabric, granular, smooth gradients) under
random brightness, contrast, lighting gradient, vignetting, rotation, blur and
sensor noise; one defect per defective frame, sized relative to the short side.
Frames come in several sizes and aspect ratios (640x480 most often; also
320x240 to 1280x720, square and portrait), 35 % of them JPEG-compressed, then
preprocessed exactly as the agent does (BGR -> gray -> 96x96 INTER_AREA stretch
-> x/255). Sources: {data}. Stratified 70/15/15 split:
{train} train / {val} validation / {test} test images. Training adds random
flips/transposes every epoch. Seed {seed}.

## Architecture

Four conv3x3-BN-ReLU blocks (16, 32, 48, 64 filters; stride 2 then max pools),
global max + average pooling, dense softmax. {params} parameters. Input
`[1, 96, 96, 1]` gray in 0..1 (the manifest's `scale` does the /255); output
softmax probabilities in label order.

Files: `model.tflite` full-integer int8 (int8 input and output, representative
dataset of training images), {tflite_kb:.0f} KiB; `model.onnx` int8 QDQ from
the same weights (onnxruntime static quantization, float input/output),
{onnx_kb:.0f} KiB.

## Results

Held-out test split (defect recall/precision: any defect class vs `ok`, top-1):

| variant | accuracy | defect recall | defect precision |
|---|---|---|---|
{test_rows}

Per class, int8 TFLite, test split:

| label | precision | recall | F1 | images |
|---|---|---|---|---|
{per_class}

640x480 frames exactly as the `synthetic:` camera renders them:

| variant | accuracy | defect recall | defect precision |
|---|---|---|---|
{cam_rows}

Targets: defect recall >= 0.95 for every variant and set, int8 accuracy within
0.02 of float, float accuracy >= 0.85: **{met}** (int8 accuracy drop {drop:.3f}).
Per-class figures and confusion matrices: `evaluation.json`.

Drift reference (`manifest.yaml: reference`): top-1 confidence quantiles, class
mix and image statistics of the validation split under the int8 TFLite model.
Golden images (`golden/`): two per class, scores of both int8 models.

## Reproduce

```
{command}
```

About four minutes on two CPU cores (rendering ~1, training ~3). Deterministic on
a given machine and software stack: same command, same files. `--quick` trains a
throw-away tiny model for tests; `--data imagefolder:DIR` trains on collected
frames (`DIR/{{train,val,test}}/{{label}}/*.png|jpg`, as `inspection-agent dataset
export` writes them), with or without `--data synthetic`.

## Limits

Trained only on synthetic textures: a real line needs retraining on its own
frames. Thin, faint or very small defects at 96x96 are the usual misses.
"""
