"""OpenCV-backed cameras and streams: failures are quick, clear and never leak credentials."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import pytest

from agent.capture import open_source
from agent.capture.opencv_source import OpenCVSource, redact_url
from agent.errors import CameraError
from tests.support.paths import free_port
from tests.unit.capture.helpers import camera


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/stream1", "rtsp://admin:***@10.0.0.5:554/stream1"),
        ("http://user:p%40ss@cam/mjpg", "http://user:***@cam/mjpg"),
        ("rtsp://10.0.0.5:554/live@main", "rtsp://10.0.0.5:554/live@main"),
        ("rtsp://cam/x", "rtsp://cam/x"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_description_of_a_stream_hides_the_password() -> None:
    source = open_source(camera("rtsp://admin:s3cret@127.0.0.1:1/x"), Path("."))
    assert isinstance(source, OpenCVSource)
    assert "s3cret" not in source.description
    assert source.live is True


@pytest.mark.skipif(cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER), reason="this OpenCV has GStreamer")
def test_gst_source_without_gstreamer_in_opencv_says_what_to_use() -> None:
    with pytest.raises(CameraError) as info:
        open_source(camera("gst:videotestsrc ! appsink"), Path("."))
    message = str(info.value)
    assert "no GStreamer support" in message
    assert "Jetson" in message and "system OpenCV" in message
    assert "\n" not in message


def test_missing_v4l2_device_fails_at_open() -> None:
    source = open_source(camera("v4l2:/dev/video-does-not-exist"), Path("."))
    with pytest.raises(CameraError, match="no such device"):
        source.open()


def test_unopenable_v4l2_index_fails_at_open() -> None:
    source = open_source(camera("v4l2:63"), Path("."))
    with pytest.raises(CameraError, match=r"v4l2:63: cannot open"):
        source.open()


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_refused_stream_fails_within_seconds(scheme: str) -> None:
    source = open_source(camera(f"{scheme}://127.0.0.1:{free_port()}/x", read_timeout_s=2.0), Path("."))
    started = time.monotonic()
    with pytest.raises(CameraError, match="cannot open"):
        source.open()
    assert time.monotonic() - started < 10.0


def test_rtsp_options_are_only_set_while_opening() -> None:
    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ
    source = open_source(camera(f"rtsp://127.0.0.1:{free_port()}/x", read_timeout_s=1.0), Path("."))
    with pytest.raises(CameraError):
        source.open()
    assert "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ


def test_read_before_open_is_a_camera_error() -> None:
    source = open_source(camera("rtsp://127.0.0.1:1/x"), Path("."))
    with pytest.raises(CameraError, match="before open"):
        source.read()
