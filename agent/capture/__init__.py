"""Capture sources: every camera a factory uses, and replays that stand in for one.

:func:`open_source` picks the backend from ``camera.source``; each backend lives in
its own module and imports its third-party library only when built, so a Pi
without OpenCV's GStreamer or a laptop without picamera2 loses nothing it does
not use. Wrap live sources in :class:`ResilientSource` to ride through outages.
"""

from __future__ import annotations

from pathlib import Path

from agent.capture.base import Frame, FrameSource
from agent.capture.common import SkippedImages, is_live
from agent.capture.resilient import OFFLINE, ONLINE, Backoff, ResilientSource
from agent.config.schema import CameraConfig

__all__ = [
    "OFFLINE",
    "ONLINE",
    "Backoff",
    "Frame",
    "FrameSource",
    "ResilientSource",
    "SkippedImages",
    "is_live",
    "open_source",
]


def open_source(camera: CameraConfig, base_dir: Path, skips: SkippedImages | None = None) -> FrameSource:
    """Build (not open) the source ``camera.source`` names; relative paths are relative to ``base_dir``.

    ``skips`` counts and reports the images a ``dir:``/``glob:`` replay skips (shared across
    reopenings, so the count survives a reconnect).

    Raises :class:`agent.errors.CameraError` for problems no retry can fix (a
    missing library, an unusable source string); device and file problems surface
    at ``open()``.
    """
    spec = camera.spec
    live = is_live(camera)
    if spec.kind == "video":
        from agent.capture.replay import VideoReplay  # one backend at a time

        return VideoReplay(_resolve(spec.target, base_dir), camera, live)
    if spec.kind == "dir":
        from agent.capture.replay import ImageReplay

        return ImageReplay.from_dir(_resolve(spec.target, base_dir), camera, live, skips)
    if spec.kind == "glob":
        from agent.capture.replay import ImageReplay

        return ImageReplay.from_glob(str(Path(spec.target).expanduser()), base_dir, camera, live, skips)
    if spec.kind == "synthetic":
        from agent.capture.synthetic import SyntheticSource

        return SyntheticSource(camera, live)
    if spec.kind == "picamera2":
        from agent.capture.picamera2_source import Picamera2Source

        return Picamera2Source(camera, live)
    from agent.capture.opencv_source import OpenCVSource

    return OpenCVSource(camera, live)  # v4l2, rtsp, http, gst


def _resolve(target: str, base_dir: Path) -> Path:
    path = Path(target).expanduser()
    return path if path.is_absolute() else base_dir / path
