"""Write a demo clip of inspected parts from the synthetic generator, and the true label of every frame.

    python scripts/make_demo_clip.py --out demo.mp4 --frames 300 --codec h264
    python scripts/make_demo_clip.py --out drift.avi --codec mjpg --darken 0.4 --blur 5

One part per frame, as a conveyor camera triggered per part would see it. The
truth goes to ``OUT.truth.json`` (``demo.mp4.truth.json``). H.264 needs the
system ``ffmpeg``; MJPEG in an .avi is written by OpenCV alone.

``--darken`` and ``--blur`` simulate a line drifting (lamp ageing, focus) for the
agent's drift detector; ``--ambiguous-rate`` makes that fraction of all frames
carry a faint, borderline defect the model should be unsure about.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Run as a file (python scripts/x.py): put the repository root on the path so `agent` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from agent.synthetic import DEFECT_LABELS, render_part

CODECS = ("h264", "mjpg")
AMBIGUOUS_SEVERITY = (0.2, 0.35)  # defect contrast of borderline frames; clear defects are drawn at 1.0


def truth_path(out: Path) -> Path:
    return out.with_name(out.name + ".truth.json")


@dataclass(frozen=True)
class ClipSpec:
    """Everything that decides the frames; checked once, before anything is written."""

    frames: int
    width: int = 640
    height: int = 480
    fps: float = 30.0
    seed: int = 0
    codec: str = "mjpg"
    defect_rate: float = 0.3
    darken: float = 0.0
    blur: int = 0
    ambiguous_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec {self.codec!r}: expected one of {', '.join(CODECS)}")
        if self.codec == "h264" and (self.width % 2 or self.height % 2):
            raise ValueError("h264 (yuv420p) needs an even width and height")
        if self.frames < 0 or self.fps <= 0 or not 0 <= self.ambiguous_rate <= self.defect_rate <= 1:
            raise ValueError("need frames >= 0, fps > 0 and 0 <= ambiguous-rate <= defect-rate <= 1")
        if not 0 <= self.darken < 1:
            raise ValueError("darken is the fraction of brightness removed: 0 <= darken < 1")
        if self.blur < 0 or (self.blur and self.blur % 2 == 0):
            raise ValueError("blur is a Gaussian kernel size: 0 (off) or an odd number of pixels")

    def render(self) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        """(BGR frame, truth entry) per frame; each frame has its own generator: frame i ignores n."""
        for i in range(self.frames):
            rng = np.random.default_rng([self.seed, i])
            u = float(rng.random())  # one draw decides both: ambiguous frames are a subset of defect frames
            label = str(rng.choice(DEFECT_LABELS)) if u < self.defect_rate else "ok"
            ambiguous = u < self.ambiguous_rate
            severity = float(rng.uniform(*AMBIGUOUS_SEVERITY)) if ambiguous else 1.0
            frame = render_part(rng, label, self.width, self.height, severity=severity)
            if self.darken:
                frame = cv2.convertScaleAbs(frame, alpha=1.0 - self.darken)
            if self.blur:
                frame = cv2.GaussianBlur(frame, (self.blur, self.blur), 0)
            entry: dict[str, Any] = {"frame": i, "label": label, "ambiguous": ambiguous}
            if ambiguous:
                entry["severity"] = round(severity, 3)
            yield frame, entry


def _write_mjpg(out: Path, spec: ClipSpec) -> list[dict[str, Any]]:
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"MJPG"), spec.fps, (spec.width, spec.height))
    if not writer.isOpened():
        raise RuntimeError(f"{out}: OpenCV cannot write MJPEG here (use an .avi name)")
    truth = []
    try:
        for frame, entry in spec.render():
            writer.write(frame)
            truth.append(entry)
    finally:
        writer.release()
    return truth


def _write_h264(out: Path, spec: ClipSpec) -> list[dict[str, Any]]:
    """Raw BGR frames piped into the system ffmpeg's libx264 (yuv420p: plays everywhere)."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("ffmpeg not found: install it (apt install ffmpeg) or use --codec mjpg")
    size, rate = f"{spec.width}x{spec.height}", str(spec.fps)
    cmd = [exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", size, "-r", rate]
    cmd += ["-i", "-", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
    proc = subprocess.Popen([*cmd, str(out)], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    truth = []
    try:
        for frame, entry in spec.render():
            proc.stdin.write(frame.tobytes())
            truth.append(entry)
    finally:
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed writing {out} (exit {proc.returncode})")
    return truth


def write_clip(
    out: Path | str,
    frames: int,
    *,
    width: int = 640,
    height: int = 480,
    fps: float = 30.0,
    seed: int = 0,
    codec: str = "mjpg",
    defect_rate: float = 0.3,
    darken: float = 0.0,
    blur: int = 0,
    ambiguous_rate: float = 0.0,
) -> dict[str, Any]:
    """Write the clip and ``OUT.truth.json``; return the truth document. Same arguments, same frames."""
    out = Path(out)
    spec = ClipSpec(frames, width, height, fps, seed, codec, defect_rate, darken, blur, ambiguous_rate)
    out.parent.mkdir(parents=True, exist_ok=True)
    truth = _write_mjpg(out, spec) if spec.codec == "mjpg" else _write_h264(out, spec)
    labels = [entry["label"] for entry in truth]
    doc = {"video": out.name, **asdict(spec), "labels": labels, "truth": truth}
    rows = ",\n  ".join(json.dumps(entry) for entry in truth)  # one frame per line, easy to read and diff
    text = json.dumps({**doc, "labels": "@L", "truth": "@T"}, indent=1)
    text = text.replace('"@L"', json.dumps(labels)).replace('"@T"', f"[\n  {rows}\n ]" if rows else "[]")
    truth_path(out).write_text(text + "\n")
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="video file (.mp4 for h264, .avi for mjpg)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codec", choices=CODECS, default="h264")
    p.add_argument("--defect-rate", type=float, default=0.3, help="fraction of frames with a defect")
    p.add_argument("--darken", type=float, default=0.0, help="fraction of brightness removed, e.g. 0.4")
    p.add_argument("--blur", type=int, default=0, help="Gaussian blur kernel size, odd pixels (0: none)")
    p.add_argument(
        "--ambiguous-rate",
        type=float,
        default=0.0,
        help="fraction of all frames with a faint, borderline defect (<= defect rate)",
    )
    a = p.parse_args(argv)
    try:
        doc = write_clip(
            a.out,
            a.frames,
            width=a.width,
            height=a.height,
            fps=a.fps,
            seed=a.seed,
            codec=a.codec,
            defect_rate=a.defect_rate,
            darken=a.darken,
            blur=a.blur,
            ambiguous_rate=a.ambiguous_rate,
        )
    except (ValueError, RuntimeError) as exc:
        p.error(str(exc))
    defects = sum(t["label"] != "ok" for t in doc["truth"])
    print(f"{a.out}: {a.frames} frames, {defects} with defects; truth in {truth_path(a.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
