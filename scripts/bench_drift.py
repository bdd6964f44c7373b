"""Benchmark: the drift monitor's false-alarm rate on a healthy line and its detection delay.

Frames are the demo model's ``synthetic:`` camera renders (640x480) in a line mix of
good and defective parts (default 80/20, ``drift.class_mix`` set to it, as
docs/health.md advises). Each mix gets a pool of rendered and inspected frames;
windows of ``drift.window`` frames are drawn from the pool and tested exactly as on
the device (:class:`WindowRecorder` + :func:`evaluate`, alarm after ``raise_after``
drifting windows in a row). Changed scenes: dimmer and flatter light (the textbook
lighting change), and a blurred lens. Both the per-class reference (``by_class``)
and the pooled one (an old manifest without it) are measured, in the same run.

    python scripts/bench_drift.py [--windows 200] [--mix 0.8 0.5 0.95]
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.config.observers import DriftConfig
from agent.config.schema import ModelConfig
from agent.drift.reference import Reference, parse_reference
from agent.drift.window import WindowRecorder, evaluate
from agent.model.loaded import LoadedModel, load_model
from agent.synthetic import DEFECT_LABELS, render_part

DEMO = Path(__file__).resolve().parents[1] / "models" / "demo-defects" / "1.0.0"
Change = Callable[[np.ndarray], np.ndarray]


def dim_and_flat(image: np.ndarray) -> np.ndarray:
    """Less light and flatter contrast: gray levels x0.5 then +15 (brightness 115 -> ~72, contrast halved)."""
    return cv2.convertScaleAbs(image, alpha=0.5, beta=15)


def blurred(image: np.ndarray) -> np.ndarray:
    """A lens out of focus: Gaussian sigma 3 at 640x480."""
    return cv2.GaussianBlur(image, (0, 0), 3.0)


CHANGES: dict[str, Change] = {"dim_and_flat_light": dim_and_flat, "blurred": blurred}


@dataclass(frozen=True, slots=True)
class Observed:
    """One inspected frame: the original image, its top-1 label and confidence."""

    image: np.ndarray
    label: str
    confidence: float


def line_mix(good_share: float) -> dict[str, float]:
    """The class mix of a line with ``good_share`` good parts, defects equally likely."""
    rest = (1.0 - good_share) / len(DEFECT_LABELS)
    return {"ok": good_share, **dict.fromkeys(DEFECT_LABELS, rest)}


def line_frames(
    model: LoadedModel, seed: int, n: int, good_share: float, change: Change | None = None
) -> list[Observed]:
    """``n`` camera frames of a line with ``good_share`` good parts, inspected by ``model``."""
    pick = np.random.default_rng([seed, 1])
    out = []
    for i in range(n):
        label = "ok" if pick.random() < good_share else DEFECT_LABELS[int(pick.integers(len(DEFECT_LABELS)))]
        image = render_part(np.random.default_rng([seed, i]), label, 640, 480)
        if change is not None:
            image = change(image)
        result = model.infer(image)
        best = max(result.scores, key=result.scores.__getitem__)
        out.append(Observed(image, best, result.scores[best]))
    return out


def run_windows(
    model: LoadedModel, ref: Reference, cfg: DriftConfig, pool: Sequence[Observed], *, windows: int, seed: int
) -> list[bool]:
    """Draw ``windows`` windows from ``pool`` through the device's recorder; each window's verdict."""
    spec = model.package.manifest.input
    recorder = WindowRecorder(cfg.window, cfg.image_every, (spec.width, spec.height))
    index = {k: i for i, k in enumerate(ref.labels)}
    rng = np.random.default_rng(seed)
    verdicts = []
    for w in range(windows):
        for k, i in enumerate(rng.integers(len(pool), size=cfg.window)):
            o = pool[i]
            window = recorder.add(
                o.confidence, index.get(o.label, len(ref.labels)), o.image, w * cfg.window + k
            )
            if window is not None:
                verdicts.append(evaluate(window, ref, cfg).drifting)
    return verdicts


def alarm_states(verdicts: Sequence[bool], raise_after: int, clear_after: int) -> list[bool]:
    """Whether the alarm is on after each window: the monitor's hysteresis (raise_after / clear_after)."""
    out, active, streak = [], False, 0
    for drifting in verdicts:
        streak = streak + 1 if drifting != active else 0
        if streak >= (clear_after if active else raise_after):
            active, streak = not active, 0
        out.append(active)
    return out


def first_alarm(verdicts: Sequence[bool], cfg: DriftConfig) -> int | None:
    """The 1-based window at which the alarm is first raised, if it is."""
    states = alarm_states(verdicts, cfg.raise_after, cfg.clear_after)
    return states.index(True) + 1 if any(states) else None


def references(model: LoadedModel, mix: dict[str, float]) -> dict[str, Reference]:
    """The per-class reference of the manifest and the pooled one (the block without ``by_class``)."""
    block = model.package.manifest.reference
    assert block is not None, "the model has no reference block"
    pooled = copy.deepcopy(block)
    pooled.pop("by_class", None)
    pooled["image_stats"]["sharpness"] = {
        k: v for k, v in pooled["image_stats"]["sharpness"].items() if k in ("mean", "std")
    }
    labels = model.package.labels
    return {"per_class": parse_reference(block, labels, mix), "pooled": parse_reference(pooled, labels, mix)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEMO)
    p.add_argument("--windows", type=int, default=200, help="windows per healthy-line run")
    p.add_argument("--mix", type=float, nargs="+", default=[0.8, 0.5, 0.95], help="good-part shares")
    p.add_argument("--pool", type=int, default=1000, help="rendered frames per healthy line")
    args = p.parse_args(argv)
    model = load_model(str(args.model), ModelConfig(path=str(args.model)), warmup=False)
    print(f"model {model.package.ident}; {args.windows} windows of 250 frames per healthy run")
    print(
        "| good share | reference | drifting windows | alarms raised | windows under alarm | first alarm |",
        end="",
    )
    print(" " + " | ".join(f"{n}: alarm at window" for n in CHANGES) + " |")
    print("|---" * (6 + len(CHANGES)) + "|")
    for share in args.mix:
        cfg = DriftConfig(class_mix=line_mix(share))
        healthy = line_frames(model, 11, args.pool, share)
        changed = {name: line_frames(model, 12, 300, share, fn) for name, fn in CHANGES.items()}
        for kind, ref in references(model, cfg.class_mix).items():
            verdicts = run_windows(model, ref, cfg, healthy, windows=args.windows, seed=3)
            states = alarm_states(verdicts, cfg.raise_after, cfg.clear_after)
            raised = sum(1 for i, on in enumerate(states) if on and (i == 0 or not states[i - 1]))
            delays = [
                first_alarm(run_windows(model, ref, cfg, pool, windows=4, seed=4), cfg)
                for pool in changed.values()
            ]
            print(
                f"| {share:.2f} | {kind} | {sum(verdicts)}/{len(verdicts)} | {raised} | "
                f"{sum(states) / len(states):.3f} | {first_alarm(verdicts, cfg) or '-'} | "
                + " | ".join(str(d or "none in 4") for d in delays)
                + " |"
            )
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
