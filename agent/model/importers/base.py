"""What an import produces: a manifest document, the model file, and a record of how each key was found.

Every key ``model import`` writes is either *inferred* (read from the export: embedded
metadata, a label file, the tensors, quantization parameters) or *guessed* (a convention
of the tool that made it, or a safe default). The command prints both lists, so a
wrong guess is visible before the package is used, and each guess names the option
that overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.runtimes.base import RuntimeKind, TensorSpec


@dataclass(frozen=True, slots=True)
class Labels:
    names: tuple[str, ...]
    indexed: bool  # written as Teachable Machine's "0 Name" lines
    source: str  # where they came from, for the report


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """The command line's overrides; ``None`` means "infer it, or guess"."""

    labels: Labels | None = None
    name: str | None = None
    version: str | None = None
    budget_ms: float | None = None
    defect_labels: tuple[str, ...] | None = None
    color: str | None = None
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: str | None = None
    input_size: tuple[int, int] | None = None  # (w, h) for a dynamic input


@dataclass(slots=True)
class Notes:
    """Inferred facts, and guesses each tagged with the options that would override it."""

    inferred: list[str] = field(default_factory=list)
    guesses: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def infer(self, text: str) -> None:
        self.inferred.append(text)

    def guess(self, text: str, *options: str) -> None:
        self.guesses.append((text, options))

    def settled(self, option: str, text: str) -> None:
        """An option given on the command line: its guesses are dropped, the value noted as given."""
        self.guesses = [g for g in self.guesses if option not in g[1]]
        self.inferred.append(f"{text} (given on the command line)")

    @property
    def guessed(self) -> list[str]:
        return [text for text, _ in self.guesses]


@dataclass(frozen=True, slots=True)
class Export:
    """One model file as the tool wrote it: its tensors and whatever it embeds."""

    path: Path
    runtime: RuntimeKind
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, Any]  # Ultralytics' embedded dictionary, or {} when the export carries none
    producer: str  # ONNX producer_name ("pytorch", "tf2onnx", ...); "" for TFLite
    probabilities: bool  # the first output already sums to 1 on every probe input (softmax inside)


@dataclass(slots=True)
class Plan:
    """A manifest document (every key but file/sha256) for :func:`agent.model.pack.pack`."""

    doc: dict[str, Any]
    model_file: Path
    notes: Notes
    tool: str  # which tool made the export, in words
