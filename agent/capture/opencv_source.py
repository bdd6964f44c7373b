"""USB/V4L2 cameras, RTSP/HTTP streams and GStreamer pipelines, through OpenCV's VideoCapture.

Source strings:

- ``v4l2:/dev/video0`` or ``v4l2:0``: a V4L2 device; ``camera.width``/``height``/``fps``
  are requested (the driver may pick the nearest mode it has; the result is logged).
- ``rtsp://user:pass@host/path``, ``http://host/stream.mjpg``: decoded by FFmpeg. RTSP
  runs over TCP (UDP loses packets and smears frames on busy factory networks) unless
  ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` is already set in the environment, and both opening
  and reading give up after ``camera.read_timeout_s``, so a dead camera surfaces as a
  :class:`CameraError` within seconds instead of a hung capture thread.
- ``gst:PIPELINE``: a GStreamer pipeline ending in ``appsink``. It needs an OpenCV
  built with GStreamer; the ``opencv-python`` wheels from PyPI are not. On a Jetson,
  use JetPack's system OpenCV (a venv created with ``--system-site-packages``). The
  CSI camera pipeline there is::

      gst:nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1
      ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR
      ! appsink drop=true max-buffers=1

  (one line in the config). ``drop=true max-buffers=1`` keeps the newest frame only,
  so a slow model never sees stale images.

Credentials in a URL never reach logs or errors: :attr:`description` masks the password.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from agent.capture.base import Frame
from agent.capture.common import stamp
from agent.config.schema import CameraConfig
from agent.errors import CameraError

log = structlog.get_logger(__name__)

_FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_RTSP_OPTIONS = "rtsp_transport;tcp"
_USERINFO = re.compile(r"^([a-z][a-z0-9+.\-]*://[^/@:]*):[^/@]*@", re.IGNORECASE)
_NO_GSTREAMER = (
    "this OpenCV has no GStreamer support (the opencv-python wheels from PyPI are built without it); "
    "on a Jetson use JetPack's system OpenCV: create the venv with --system-site-packages "
    "and do not install opencv-python into it"
)


def redact_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://user:***@host/x``."""
    return _USERINFO.sub(r"\1:***@", url)


class OpenCVSource:
    """One ``cv2.VideoCapture``; any failure to open or read is a :class:`CameraError`."""

    def __init__(self, camera: CameraConfig, live: bool) -> None:
        self._cv2 = _cv2()
        spec = camera.spec
        self.live = live
        self._camera = camera
        self._kind = spec.kind
        self._cap: Any = None
        self._seq = 0
        self._target: str | int = spec.target
        if spec.kind == "v4l2":
            self._target = int(spec.target) if spec.target.isdigit() else spec.target
            self._backend = self._cv2.CAP_V4L2
            self.description = f"v4l2:{spec.target}"
        elif spec.kind == "gst":
            if not self._cv2.videoio_registry.hasBackend(self._cv2.CAP_GSTREAMER):
                raise CameraError(f"gst: {_NO_GSTREAMER}")
            self._backend = self._cv2.CAP_GSTREAMER
            self.description = f"gst:{spec.target}"
        else:
            self._backend = self._cv2.CAP_FFMPEG
            self.description = redact_url(spec.target)

    def open(self) -> None:
        self.close()
        if isinstance(self._target, str) and self._kind == "v4l2" and not Path(self._target).exists():
            raise CameraError(f"{self.description}: no such device")
        cap = self._open_capture(round(self._camera.read_timeout_s * 1000))
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.description}: cannot open (unreachable, refused or not a video source)")
        self._cap = cap
        if self._kind == "v4l2":
            self._request_mode()

    def _open_capture(self, timeout_ms: int) -> Any:
        """A VideoCapture that gives up after ``timeout_ms`` opening and reading, where the backend can.

        Open-time parameters a backend does not know make it refuse to open, and only
        FFmpeg is known to take both timeouts; the others get the read timeout as a
        property, which they ignore when unsupported.
        """
        cv2 = self._cv2
        if self._backend != cv2.CAP_FFMPEG:
            cap = cv2.VideoCapture(self._target, self._backend)
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms)
            return cap
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        with _ffmpeg_options(_RTSP_OPTIONS if self._kind == "rtsp" else None):
            return cv2.VideoCapture(self._target, cv2.CAP_FFMPEG, params)

    def read(self) -> Frame:
        cap = self._cap
        if cap is None:
            raise CameraError(f"{self.description}: read() before open()")
        started = time.monotonic()
        ok, image = cap.read()
        if not ok or image is None:
            timeout = self._camera.read_timeout_s
            raise CameraError(
                f"{self.description}: no frame (stream ended, camera lost or silent for {timeout:g} s)"
            )
        frame = stamp(np.asarray(image), self._seq, started)
        self._seq += 1
        return frame

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _request_mode(self) -> None:
        """Ask the driver for the configured size and rate; it answers with what it can do."""
        cv2, cap, cam = self._cv2, self._cap, self._camera
        if cam.width and cam.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, cam.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cam.height)
        cap.set(cv2.CAP_PROP_FPS, cam.fps)
        log.info(
            "camera_mode",
            source=self.description,
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=float(cap.get(cv2.CAP_PROP_FPS)),
        )


@contextmanager
def _ffmpeg_options(options: str | None) -> Iterator[None]:
    """Set FFmpeg's capture options while a capture opens, unless the operator already chose some."""
    if options is None or _FFMPEG_OPTIONS_ENV in os.environ:
        yield
        return
    os.environ[_FFMPEG_OPTIONS_ENV] = options
    try:
        yield
    finally:
        os.environ.pop(_FFMPEG_OPTIONS_ENV, None)


def _cv2() -> Any:
    import cv2  # heavy; imported when a camera is built

    return cv2
