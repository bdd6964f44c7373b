"""``picamera2:N``: a Raspberry Pi camera (libcamera) through the picamera2 library.

picamera2 is not on PyPI in a usable form (it needs the system libcamera
bindings), so it is imported lazily here and its absence is reported with the
fix. The OS's picamera2 and simplejpeg are built against Raspberry Pi OS's numpy
1.x: a venv that pulled numpy 2 makes their import fail with "numpy.dtype size
changed" (a ValueError) or similar, reported as one line naming the pinned install.

Size, pixel format, exposure and gain come from ``camera.picamera2``; the
frame rate from ``camera.fps``. Frames are converted to BGR once per frame with
a conversion chosen when the source is built (picamera2's ``RGB888`` is already
BGR in memory, so the default costs nothing).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from agent.capture.base import Frame
from agent.capture.common import stamp
from agent.config.schema import CameraConfig
from agent.errors import CameraError

log = structlog.get_logger(__name__)

INSTALL_HINT = (
    "picamera2 is not installed: on Raspberry Pi OS run `sudo apt install python3-picamera2` "
    "and create the venv with --system-site-packages"
)


def _conversions() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """picamera2 format name -> array to BGR. Names follow libcamera: ``RGB888`` is B,G,R in memory."""
    import cv2

    return {
        "RGB888": lambda a: a,
        "BGR888": lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2BGR),
        "XRGB8888": lambda a: cv2.cvtColor(a, cv2.COLOR_BGRA2BGR),
        "XBGR8888": lambda a: cv2.cvtColor(a, cv2.COLOR_RGBA2BGR),
        "YUV420": lambda a: cv2.cvtColor(a, cv2.COLOR_YUV2BGR_I420),
    }


class Picamera2Source:
    """One Picamera2 camera, configured for continuous video capture of the ``main`` stream."""

    def __init__(self, camera: CameraConfig, live: bool) -> None:
        Picamera2 = _import_picamera2()
        target = camera.spec.target.strip() or "0"
        if not target.isdigit():
            raise CameraError(f"picamera2:{target}: the camera number must be an integer (0, 1, ...)")
        conversions = _conversions()
        settings = camera.picamera2
        if settings.format not in conversions:
            choices = ", ".join(conversions)
            raise CameraError(
                f"picamera2: format {settings.format!r} is not supported (use one of {choices})"
            )
        self.live = live
        self.description = f"picamera2:{target}"
        self._factory = Picamera2
        self._index = int(target)
        self._camera = camera
        self._to_bgr = conversions[settings.format]
        self._cam: Any = None
        self._seq = 0

    def open(self) -> None:
        self.close()
        settings = self._camera.picamera2
        period_us = round(1_000_000 / self._camera.fps)
        controls: dict[str, Any] = {"FrameDurationLimits": (period_us, period_us)}
        if settings.exposure_us is not None:
            controls["ExposureTime"] = settings.exposure_us
        if settings.analogue_gain is not None:
            controls["AnalogueGain"] = settings.analogue_gain
        try:
            cam = self._factory(self._index)
        except (
            Exception
        ) as exc:  # picamera2 raises IndexError/RuntimeError/OSError for a missing or busy camera
            raise CameraError(f"{self.description}: cannot open the camera: {_one_line(exc)}") from exc
        try:
            main = {"size": (settings.width, settings.height), "format": settings.format}
            cam.configure(cam.create_video_configuration(main=main, controls=controls))
            cam.start()
        except Exception as exc:
            cam.close()
            raise CameraError(f"{self.description}: cannot start the camera: {_one_line(exc)}") from exc
        self._cam = cam

    def read(self) -> Frame:
        cam = self._cam
        if cam is None:
            raise CameraError(f"{self.description}: read() before open()")
        started = time.monotonic()
        try:
            array = cam.capture_array("main")
        except Exception as exc:
            raise CameraError(f"{self.description}: capture failed: {_one_line(exc)}") from exc
        frame = stamp(self._to_bgr(array), self._seq, started)
        self._seq += 1
        return frame

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is None:
            return
        for step in (cam.stop, cam.close):
            try:
                step()
            except Exception as exc:  # a camera that fails to stop is still closed; nothing to retry
                log.warning("picamera2_close_failed", source=self.description, error=_one_line(exc))


def _import_picamera2() -> Any:
    """The Picamera2 class, or a CameraError saying why the OS's picamera2 cannot be used here."""
    try:
        from picamera2 import Picamera2
    except ModuleNotFoundError as exc:
        missing = exc.name or "picamera2"
        if missing == "picamera2":
            raise CameraError(INSTALL_HINT) from exc
        if not missing.startswith("numpy"):  # libcamera, simplejpeg, …: the apt package brings them
            raise CameraError(
                f"picamera2 cannot import {missing}: {INSTALL_HINT.partition(': ')[2]}"
            ) from exc
        raise CameraError(_numpy_mismatch(exc)) from exc
    except Exception as exc:  # numpy ABI: ValueError "dtype size changed", ImportError, AttributeError
        raise CameraError(_numpy_mismatch(exc)) from exc
    return Picamera2


def _numpy_mismatch(exc: BaseException) -> str:
    """The fix names this venv's own pip, so it can be pasted as is."""
    pip = Path(sys.prefix) / "bin" / "pip"
    return (
        f"picamera2 cannot be imported with numpy {np.__version__} ({_one_line(exc)}): the OS's "
        f"picamera2/simplejpeg are built for numpy 1.x; keep the venv on numpy 1 like the OS: "
        f"{pip} install 'numpy<2' 'opencv-python-headless<5' "
        f"(as deploy/constraints/pi-aarch64-cp311.txt pins; docs/deploy.md)"
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
