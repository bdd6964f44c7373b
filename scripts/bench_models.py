"""Per-frame latency of a model package on this machine: each runtime, int8 against float, and package size.

For every runtime the package carries it times the agent's own path (preprocess +
invoke + postprocess on a 640x480 camera frame) and invoke alone, p50/p99 over
``--runs`` frames after a warm-up. The float baseline is the package's int8 QDQ ONNX
model with its Quantize/Dequantize pairs folded back into float weights (same network,
same weights up to rounding), run in the same process, so the ratio compares like with
like. A float TFLite baseline would need the original float model: that is skipped
unless ``--float-tflite FILE`` is given.

Run: ``python scripts/bench_models.py [--package models/demo-defects/1.0.0] [--runs 300]``.
Without the demo package it benchmarks the committed QDQ fixture instead, and says so.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config.schema import ModelConfig
from agent.model.loaded import LoadedModel
from agent.model.package import open_package
from agent.runtimes import open_runtime

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "models" / "demo-defects" / "1.0.0"
FRAME = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)


def percentiles(fn: Any, runs: int) -> tuple[float, float]:
    for _ in range(10):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    p50, p99 = np.percentile(times, [50, 99])
    return float(p50), float(p99)


def bench(model: LoadedModel, runs: int) -> dict[str, tuple[float, float]]:
    tensor, _ = model.preprocess(FRAME)
    return {
        "frame": percentiles(lambda: model.infer(FRAME), runs),
        "invoke": percentiles(lambda: model.runtime.run(tensor), runs),
    }


def _float_weight(node: Any, inits: dict[str, Any]) -> Any:
    from onnx import numpy_helper

    q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    zero: Any = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32) if len(node.input) > 2 else 0.0
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if np.ndim(scale) == 1 and q.ndim > 1:  # per-channel: broadcast along the channel axis
        shape = [1] * q.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        zero = np.reshape(zero, shape) if np.ndim(zero) else zero
    return numpy_helper.from_array(((q - zero) * scale).astype(np.float32), node.output[0])


def _clip_for(q: Any, dq: Any, inits: dict[str, Any], index: int) -> tuple[Any, list[Any]]:
    """A Clip node doing what a Quantize/Dequantize pair does to range (saturation, e.g. a fused ReLU)."""
    from onnx import helper, numpy_helper

    scale = float(numpy_helper.to_array(inits[q.input[1]]))
    zero_arr = numpy_helper.to_array(inits[q.input[2]])
    info = np.iinfo(zero_arr.dtype)
    zero = float(zero_arr)
    lo, hi = f"qdq_clip_lo_{index}", f"qdq_clip_hi_{index}"
    consts = [
        numpy_helper.from_array(np.array((info.min - zero) * scale, np.float32), lo),
        numpy_helper.from_array(np.array((info.max - zero) * scale, np.float32), hi),
    ]
    return helper.make_node("Clip", [q.input[0], lo, hi], [dq.output[0]]), consts


def strip_qdq(src: Path, dst: Path) -> bool:
    """Fold a QDQ ONNX model back to float: weights dequantized, each activation Q/DQ pair made a Clip.

    The Clip keeps the pair's range (quantize_static folds a ReLU into an activation's
    zero point), so the float model computes what the int8 one does, without rounding.
    """
    import onnx

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    drop, clips = [], []
    for node in list(graph.node):
        if node.op_type != "DequantizeLinear":
            continue
        q = producers.get(node.input[0])
        if node.input[0] in inits:  # a quantized weight: store it as float
            graph.initializer.append(_float_weight(node, inits))
            drop.append(node)
        elif q is not None and q.op_type == "QuantizeLinear" and len(q.input) > 2:
            clip, consts = _clip_for(q, node, inits, len(clips))
            graph.initializer.extend(consts)
            clips.append((node, clip))
            drop.append(q)
    if not drop:
        return False
    for node, clip in clips:  # in place, so the graph stays topologically sorted
        graph.node.insert(list(graph.node).index(node), clip)
        graph.node.remove(node)
    for node in drop:
        if node in graph.node:
            graph.node.remove(node)
    onnx.save(model, str(dst))
    return True


def fixture_package(tmp: Path) -> Path:
    from agent.model.pack import pack

    doc = {
        "name": "qdq-fixture",
        "version": "1",
        "task": "classification",
        "labels": ["ok", "scratch", "dent"],
        "budget_ms": 50,
        "input": {"width": 32, "height": 32, "layout": "NCHW"},
        "output": {"activation": "softmax"},
    }
    models = [REPO / "tests" / "fixtures" / "models" / "cls_qdq.onnx"]
    return pack(doc, models, tmp / "pkg").root


def report(name: str, figures: dict[str, tuple[float, float]], base: float | None = None) -> None:
    (f50, f99), (i50, i99) = figures["frame"], figures["invoke"]
    ratio = f"  ({i50 / base:.2f}x float invoke p50)" if base else ""
    print(
        f"{name:32s} frame p50 {f50:7.3f} ms  p99 {f99:7.3f} ms | "
        f"invoke p50 {i50:7.3f} ms  p99 {i99:7.3f} ms{ratio}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=DEMO)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--float-tflite", type=Path, help="float TFLite export of the same network, as a baseline"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.package
        if not (root / "manifest.yaml").is_file():
            print(f"{root} not found: benchmarking the committed int8 QDQ fixture instead")
            root = fixture_package(Path(tmp))
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(
            f"package {root}: {size / 1024:.1f} KiB on disk; "
            f"{args.runs} runs, {args.threads} thread(s), 640x480 frames"
        )
        cfg = ModelConfig(path=str(root), threads=args.threads)
        for kind in open_package(root).manifest.files():
            package = open_package(root, kind)
            model = LoadedModel(package, open_runtime(kind, package.model_file, cfg))
            int8 = bench(model, args.runs)
            base = None
            if kind == "onnx":
                float_file = Path(tmp) / "float.onnx"
                if strip_qdq(package.model_file, float_file):
                    fmodel = LoadedModel(package, open_runtime("onnx", float_file, cfg))
                    floats = bench(fmodel, args.runs)
                    base = floats["invoke"][0]
                    report(f"onnx float (QDQ folded, {float_file.stat().st_size // 1024} KiB)", floats)
            report(f"{kind} int8 ({package.model_file.stat().st_size // 1024} KiB)", int8, base)
            if kind == "tflite":
                if args.float_tflite:
                    ftl = LoadedModel(package, open_runtime("tflite", args.float_tflite, cfg))
                    report("tflite float", bench(ftl, args.runs))
                else:
                    print(
                        "tflite float: skipped (pass --float-tflite FILE, a float export of the same network)"
                    )


if __name__ == "__main__":
    main()
