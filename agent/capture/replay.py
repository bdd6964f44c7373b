"""Replays of recorded material: ``video:PATH``, ``dir:PATH`` and ``glob:PATTERN``.

A replay stands in for a camera in tests, demos and acceptance runs. With
``camera.realtime`` it is paced like the camera that recorded it (a video at its
own frame rate, images at ``camera.fps``); without, it delivers frames as fast as
they are read, which is what a benchmark or a batch re-inspection wants. Problems
are found at :meth:`open` where possible, so a wrong path fails the start, not
the first frame.
"""

from __future__ import annotations

import functools
import glob as globmod
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent.capture.base import Frame
from agent.capture.common import Pacer, SkippedImages, stamp
from agent.capture.imagesize import image_size
from agent.config.schema import CameraConfig
from agent.errors import CameraError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
_SANE_FPS = (1.0, 240.0)  # a container claiming a rate outside this is not to be trusted


class VideoReplay:
    """Frames of a video file, decoded by OpenCV (FFmpeg)."""

    def __init__(self, path: Path, camera: CameraConfig, live: bool) -> None:
        self.path = path
        self.live = live
        self.description = f"video:{path}"
        self._camera = camera
        self._cv2 = _cv2()
        self._cap: Any = None
        self._pending: np.ndarray | None = None  # the first frame, decoded by open() to prove the file
        self._pacer = Pacer(None)
        self._index = 0
        self._seq = 0

    def open(self) -> None:
        self._pending = self._open_capture()
        fps = self._camera.fps
        own = float(self._cap.get(self._cv2.CAP_PROP_FPS) or 0.0)
        if _SANE_FPS[0] <= own <= _SANE_FPS[1]:
            fps = own  # realtime replay of a recording means at the rate it was recorded
        self._pacer = Pacer(fps if self._camera.realtime else None)

    def read(self) -> Frame | None:
        if self._cap is None:
            raise CameraError(f"{self.description}: read() before open()")
        self._pacer.wait()
        started = time.monotonic()
        image = self._next_image()
        if image is None:
            return None
        frame = stamp(image, self._seq, started, ref=f"{self.path.name}#{self._index}")
        self._seq += 1
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _next_image(self) -> np.ndarray | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image
        ok, image = self._cap.read()
        if ok:
            return np.asarray(image)
        if not self._camera.loop:
            return None
        self._cap.release()
        self._index = 0  # the pacing grid carries on: the loop point gets no pause and no burst
        return self._open_capture()

    def _open_capture(self) -> np.ndarray:
        """(Re)open the file and decode its first frame; a file that yields none is unusable."""
        cv2 = self._cv2
        if not self.path.is_file():
            raise CameraError(f"{self.description}: no such file")
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        ok, image = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            cap.release()
            raise CameraError(f"{self.description}: cannot decode a frame (not a video OpenCV can read?)")
        self._cap = cap
        return np.asarray(image)


class ImageReplay:
    """Still images in name order, from a folder (``dir:``) or a pattern (``glob:``).

    ``Frame.ref`` is the file name (``dir:``) or the matched path (``glob:``), so a
    result can be traced back to its image. A file that is not an image, cannot be
    decoded, or whose header claims more than ``camera.max_image_pixels`` is skipped
    (never decoded when too large), counted in ``skips`` and reported; only a folder
    with no usable image at all is an error.
    """

    def __init__(
        self,
        description: str,
        list_files: Callable[[], list[tuple[Path, str]]],
        camera: CameraConfig,
        live: bool,
        skips: SkippedImages | None = None,
    ) -> None:
        self.live = live
        self.description = description
        self._list_files = list_files
        self._files: list[Path] = []
        self._refs: list[str] = []
        self._cv2 = _cv2()
        self._camera = camera
        self._pacer = Pacer(camera.fps if camera.realtime else None)
        self._index = 0
        self._seq = 0
        self._closed = False
        self.skips = skips or SkippedImages()

    @classmethod
    def from_dir(
        cls, path: Path, camera: CameraConfig, live: bool, skips: SkippedImages | None = None
    ) -> ImageReplay:
        return cls(f"dir:{path}", functools.partial(_list_dir, path), camera, live, skips)

    @classmethod
    def from_glob(
        cls,
        pattern: str,
        base_dir: Path,
        camera: CameraConfig,
        live: bool,
        skips: SkippedImages | None = None,
    ) -> ImageReplay:
        return cls(f"glob:{pattern}", functools.partial(_list_glob, pattern, base_dir), camera, live, skips)

    def open(self) -> None:
        items = self._list_files()
        self._files = [path for path, _ in items]
        self._refs = [ref for _, ref in items]
        self._index = 0
        self._closed = False
        self._pacer.reset()

    def read(self) -> Frame | None:
        self._pacer.wait()
        started = time.monotonic()
        for _ in range(len(self._files) + 1):  # one full pass at most: then nothing here is usable
            index = self._index
            if index >= len(self._files):
                if self._closed or not self._camera.loop or not self._files:
                    return None
                index = 0
            self._index = index + 1
            image = self._decode(self._files[index], self._refs[index])
            if image is not None:
                frame = stamp(image, self._seq, started, ref=self._refs[index])
                self._seq += 1
                return frame
        raise CameraError(
            f"{self.description}: no readable image in a whole pass ({self.skips.count} skipped)"
        )

    def _decode(self, path: Path, ref: str) -> np.ndarray | None:
        """The image, or None when it is skipped (counted and reported): checked from its header
        against ``camera.max_image_pixels`` first, so a huge one is never decoded."""
        try:
            width, height = image_size(path)
        except CameraError as exc:
            self.skips.note(self.description, ref, str(exc))
            return None
        limit = self._camera.max_image_pixels
        if width * height > limit:
            self.skips.note(
                self.description, ref, f"{width}x{height} is over camera.max_image_pixels={limit}"
            )
            return None
        image = self._cv2.imread(str(path), self._cv2.IMREAD_COLOR)
        if image is None:
            self.skips.note(self.description, ref, "OpenCV cannot decode it")
            return None
        return np.asarray(image)

    def close(self) -> None:
        """Called from another thread to end the replay: the next read returns None."""
        self._closed = True
        self._index = len(self._files)


def _list_dir(path: Path) -> list[tuple[Path, str]]:
    """Image files directly in ``path``, by name; the file name is the frame's ref."""
    try:
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except FileNotFoundError:
        raise CameraError(f"dir:{path}: no such directory") from None
    except OSError as exc:
        raise CameraError(f"dir:{path}: cannot list it: {exc.strerror or exc}") from exc
    if not files:
        raise CameraError(f"dir:{path}: no images in it (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return [(p, p.name) for p in files]


def _list_glob(pattern: str, base_dir: Path) -> list[tuple[Path, str]]:
    """Files matching ``pattern`` (relative to ``base_dir``, ``**`` recurses); the match is the ref."""
    matches = sorted(globmod.glob(pattern, root_dir=base_dir, recursive=True))
    items = [(base_dir / m, m) for m in matches if (base_dir / m).is_file()]
    if not items:
        raise CameraError(f"glob:{pattern}: no file matches (relative to {base_dir})")
    return items


def _cv2() -> Any:
    """OpenCV, imported when a replay is used (it is a core dependency, but heavy to import)."""
    import cv2

    return cv2
