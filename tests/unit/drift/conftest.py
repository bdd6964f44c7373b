"""A real (small) classifier package with a reference block computed like the training script does."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from agent.config import AgentConfig, load_config
from agent.config.schema import ModelConfig
from agent.imagestats import STAT_NAMES, image_stats
from agent.model.loaded import LoadedModel, load_model
from agent.synthetic import LABELS as PART_LABELS
from agent.synthetic import render_part
from tests.support.models import make_package, slow_classifier
from tests.support.paths import DEMO_MODEL

LABELS = ["ok", "scratch", "hole"]
SIZE = (160, 120)  # small renders keep the tests fast; stats are taken at the model input size anyway


def render(seed: int, n: int, darken: float = 1.0, blur: float = 0.0) -> list[np.ndarray]:
    """``n`` synthetic parts (balanced labels), optionally darkened or blurred."""
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        img = render_part(rng, PART_LABELS[i % len(PART_LABELS)], *SIZE)
        if darken != 1.0:
            img = cv2.convertScaleAbs(img, alpha=darken)
        if blur:
            img = cv2.GaussianBlur(img, (0, 0), blur)
        out.append(img)
    return out


def reference_block(model: LoadedModel, frames: Sequence[np.ndarray]) -> dict[str, Any]:
    """What the training script writes: sorted top-1 quantiles, predicted mix, image-stat mean/std."""
    spec = model.package.manifest.input
    top1, labels, stats = [], [], []
    for img in frames:
        result = model.infer(img)
        best = max(result.scores, key=result.scores.__getitem__)
        top1.append(result.scores[best])
        labels.append(best)
        gray = cv2.resize(
            cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (spec.width, spec.height), interpolation=cv2.INTER_AREA
        )
        stats.append(image_stats(gray))
    arr = np.array(stats)
    quantiles = np.quantile(np.array(top1), np.linspace(0, 1, min(256, len(top1))))
    return {
        "split": "validation",
        "samples": len(frames),
        "top1_confidence": [float(v) for v in quantiles],
        "class_mix": {k: labels.count(k) / len(labels) for k in model.package.labels},
        "image_stats": {
            name: {"mean": float(arr[:, i].mean()), "std": float(arr[:, i].std())}
            for i, name in enumerate(STAT_NAMES)
        },
    }


@pytest.fixture(scope="session")
def plain_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class classifier without a reference block."""
    root = tmp_path_factory.mktemp("drift-model")
    model = slow_classifier(root / "m.onnx", 1, classes=3, width=32, height=32)
    return make_package(
        root / "plain", model, name="tiny", version="1.0.0", labels=LABELS, width=32, height=32
    )


@pytest.fixture(scope="session")
def ref_package(plain_package: Path) -> Path:
    """The same classifier with a reference computed on 300 renders (seed 1)."""
    from agent.config.schema import ModelConfig
    from agent.model.loaded import load_model

    model = load_model(str(plain_package), ModelConfig(path=str(plain_package)), warmup=False)
    block = reference_block(model, render(1, 300))
    root = plain_package.parent / "with-ref"
    root.mkdir(exist_ok=True)
    for f in plain_package.iterdir():
        (root / f.name).write_bytes(f.read_bytes())
    doc = yaml.safe_load((root / "manifest.yaml").read_text())
    doc["reference"] = block
    doc["version"] = "1.0.0-ref"  # another package: the monitor tells models apart by version and sha256
    (root / "manifest.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


@pytest.fixture
def agent_config(tmp_path: Path) -> Callable[..., AgentConfig]:
    def make(package: Path, **drift: Any) -> AgentConfig:
        doc = {
            "device": {"id": "cam-01", "site": "s", "line": "l"},
            "camera": {"source": "synthetic:", "fps": 30},
            "model": {"path": str(package), "warmup_runs": 0},
            "state": {"dir": str(tmp_path / "state")},
            "drift": drift,
        }
        path = tmp_path / "agent.yaml"
        path.write_text(yaml.safe_dump(doc))
        return load_config(path)

    return make


@pytest.fixture(scope="module")
def demo() -> Iterator[LoadedModel]:
    """The demo package, loaded once per module (the line simulations infer with it)."""
    model = load_model(str(DEMO_MODEL), ModelConfig(path=str(DEMO_MODEL)), warmup=False)
    yield model
    model.close()
