"""Image classifiers without embedded metadata: Teachable Machine, Edge Impulse, Keras, torch-exported ONNX.

Names come from a label file or ``--labels``; the input range is read from the export
where it says it (an integer input's quantization, a Keras ``Rescaling`` layer, Teachable
Machine's ``0 Name`` label file, which goes with its [-1, 1] scaling) and guessed where it
does not (ImageNet normalisation for a torch export, 0..1 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ModelError
from agent.model.importers.base import Export, ImportOptions, Labels, Notes, Plan
from agent.model.importers.labels import check_count
from agent.model.importers.tensors import image_input, quantized_range, range_to_input

IMAGENET = {"scale": 1.0 / 255.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
UNIT = {"scale": 1.0 / 255.0, "mean": [0.0], "std": [1.0]}


@dataclass(frozen=True, slots=True)
class KerasFacts:
    """What a converted Keras model said about itself: its own first-layer rescaling, if any."""

    rescales: bool
    detail: str


def missing_labels(model: Path) -> ModelError:
    return ModelError(
        f"{model.name} carries no class names (no Ultralytics metadata, no labels.txt beside it) "
        "and no --labels was given: pass --labels FILE or --labels name1,name2,…"
    )


def plan(export: Export, opts: ImportOptions, notes: Notes, labels: Labels, keras: KerasFacts | None) -> Plan:
    shape = export.outputs[0].shape
    if len(export.outputs) != 1 or len(shape) not in (1, 2) or not shape[-1]:
        raise ModelError(
            f"{export.path.name} outputs {[list(o.shape) for o in export.outputs]}: without embedded "
            "metadata only classifiers ([1, classes]) are imported; write a manifest and use `model pack`"
        )
    check_count(labels.names, int(shape[-1]), labels.source)
    inp = image_input(export.inputs[0], opts.input_size)
    tool = _tool(export, labels, keras)
    size = f"{inp.width}x{inp.height} {inp.layout}"
    notes.infer(f"{tool}: {len(labels.names)} labels from {labels.source}, input {size}")
    section: dict[str, Any] = {"width": inp.width, "height": inp.height, "layout": inp.layout}
    section.update(_scaling(export, labels, keras, notes))
    section["color"] = _color(inp.channels, tool, notes)
    section["resize"] = _resize(tool, notes)
    activation = "none" if export.probabilities else "softmax"
    notes.infer(
        "outputs already sum to 1 (softmax inside the model)"
        if export.probabilities
        else "outputs do not sum to 1 (logits): softmax applied"
    )
    if opts.defect_labels is None:
        notes.guess(
            f"{labels.names[0]!r} is the good class, every other label a defect "
            "(override with --defect-labels)",
            "defect_labels",
        )
    doc: dict[str, Any] = {
        "task": "classification",
        "labels": list(labels.names),
        "input": section,
        "output": {"format": "scores", "activation": activation},
    }
    return Plan(doc, export.path, notes, tool)


def _tool(export: Export, labels: Labels, keras: KerasFacts | None) -> str:
    if keras is not None:
        return "Keras model"
    if labels.indexed:
        return "Teachable Machine export"
    if export.inputs[0].quantized:
        return f"integer-quantized {export.runtime} classifier (Edge Impulse style)"
    if export.producer == "pytorch":
        return "torch-exported ONNX"
    return f"{export.runtime} classifier"


def _scaling(export: Export, labels: Labels, keras: KerasFacts | None, notes: Notes) -> dict[str, Any]:
    rng = quantized_range(export.inputs[0])
    if rng is not None:
        spec = export.inputs[0]
        notes.infer(f"input range {rng[0]:.3g}..{rng[1]:.3g} from the input's quantization "
                    f"(scale {spec.scale:.6g}, zero point {spec.zero_point})")  # fmt: skip
        return range_to_input(*rng)
    if keras is not None and keras.rescales:
        notes.infer(f"the model rescales its input itself ({keras.detail}): raw 0..255 pixels fed")
        return {"scale": 1.0, "mean": [0.0], "std": [1.0]}
    if labels.indexed:
        notes.infer("Teachable Machine scaling: pixels / 127.5 - 1 (its input range is [-1, 1])")
        return {"scale": 1.0 / 127.5, "mean": [1.0], "std": [1.0]}
    if export.producer == "pytorch":
        notes.guess("ImageNet normalisation (torchvision's default; override with --scale/--mean/--std)",
                    "scale", "mean", "std")  # fmt: skip
        return dict(IMAGENET)
    notes.guess("pixels scaled to 0..1 (override with --scale/--mean/--std)", "scale", "mean", "std")
    return dict(UNIT)


def _color(channels: int, tool: str, notes: Notes) -> str:
    if channels == 1:
        notes.infer("one input channel: greyscale")
        return "GRAY"
    if tool.startswith(("Teachable", "Keras", "integer")):
        notes.infer("RGB channel order (what this tool trains on)")
    else:
        notes.guess("RGB channel order (override with --color BGR for OpenCV-trained models)", "color")
    return "RGB"


def _resize(tool: str, notes: Notes) -> str:
    if tool.startswith("Teachable"):
        notes.infer("centre crop to a square, as Teachable Machine crops its webcam images")
        return "center_crop"
    notes.guess("frame stretched to the input size (override with --resize letterbox|center_crop)", "resize")
    return "stretch"
