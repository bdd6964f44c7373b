"""``train.yaml``: every knob of a retraining run, validated strictly (unknown keys are errors).

All keys are optional; the defaults suit a few thousand images on a small CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agent.config.loader import read_yaml
from agent.config.typed import build
from agent.errors import ConfigError

Problems = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class AugmentConfig:
    """Random changes to each training image every epoch; a defect keeps its label under all of them."""

    flip: bool = True  # horizontal and vertical
    transpose: bool = False  # with flips: all 8 symmetries of the square (parts without orientation)
    rotate_deg: float = 10.0  # uniform in +-rotate_deg
    brightness: float = 0.1  # added, as a fraction of full scale
    contrast: float = 0.1  # multiplied around mid-grey: 1 +- contrast
    crop: float = 0.1  # crop away up to this fraction of each side, then resize back


@dataclass(frozen=True, slots=True)
class InputConfig:
    """Preprocessing written to the manifest; ``None`` keeps the base package's (or a default)."""

    color: Literal["RGB", "BGR", "GRAY"] | None = None
    resize: Literal["stretch", "letterbox", "center_crop"] | None = None
    scale: float | None = None
    mean: list[float] | None = None
    std: list[float] | None = None


@dataclass(frozen=True, slots=True)
class TrainConfig:
    name: str | None = None  # default: the base package's name, else the --out directory's name
    description: str = ""
    seed: int = 0
    epochs: int = 15
    freeze_epochs: int = 3  # first epochs train only the new head; then everything, at fine_tune_rate
    batch_size: int = 32
    learning_rate: float = 2e-3
    fine_tune_rate: float = 3e-4
    patience: int = 4  # early stopping: epochs without a better validation loss
    dropout: float = 0.2
    split: list[int] = field(default_factory=lambda: [70, 15, 15])
    min_per_class: int = 10
    on_few: Literal["refuse", "warn"] = "refuse"
    input_mismatch: Literal["resize", "refuse"] = "resize"
    imbalance: Literal["class_weight", "oversample", "none"] = "class_weight"
    near_duplicate_bits: int = 12  # of 256 dHash bits: re-saved or re-encoded copies of one frame
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    input: InputConfig = field(default_factory=InputConfig)
    calibration_images: int = 200
    max_int8_drop: float = 0.02
    budget_ms: float = 50.0
    min_confidence: float = 0.5
    defect_labels: list[str] | None = None  # default: every label except "ok" (or the first)
    previous_data: bool = True  # re-read the data the base package was trained on, when still on disk

    def _check(self) -> Problems:
        problems: Problems = []
        if len(self.split) != 3 or sum(self.split) != 100 or min(self.split) <= 0:
            problems.append(("split", "needs 3 positive percentages (train, val, test) summing to 100"))
        for key in ("epochs", "batch_size", "min_per_class", "calibration_images"):
            if getattr(self, key) < 1:
                problems.append((key, "must be at least 1"))
        if not 0 <= self.freeze_epochs <= self.epochs:
            problems.append(("freeze_epochs", "must be between 0 and epochs"))
        if not 0 <= self.max_int8_drop <= 1:
            problems.append(("max_int8_drop", "must be a fraction between 0 and 1"))
        if not 0 <= self.dropout < 1:
            problems.append(("dropout", "must be in [0, 1)"))
        return problems


def load_train_config(path: Path | None) -> TrainConfig:
    """The defaults when ``path`` is None; otherwise the file, every problem reported at once."""
    if path is None:
        return TrainConfig()
    doc = read_yaml(path)
    data = doc.data if doc.data is not None else {}
    cfg, problems = build(TrainConfig, data, str(path), doc.line_of)
    problems = doc.problems + problems
    if problems or cfg is None:
        raise ConfigError(problems or [f"{path}: not a train config"])
    return cfg
