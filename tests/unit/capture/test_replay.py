"""Replays of real files: MJPG videos and PNG folders written into tmp_path."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.capture import open_source
from agent.capture.base import Frame
from agent.errors import CameraError
from tests.unit.capture.helpers import camera, mean, write_images, write_video


def read_all(source: object, limit: int = 100) -> list[Frame]:
    frames = []
    for _ in range(limit):
        frame = source.read()  # type: ignore[attr-defined]
        if frame is None:
            break
        frames.append(frame)
    return frames


def test_video_replay_delivers_every_frame_in_order_then_ends(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", [20, 120, 220])
    source = open_source(camera("video:clip.avi", realtime=False), tmp_path)
    source.open()
    frames = read_all(source)
    source.close()
    assert [round(mean(f.image), -1) for f in frames] == [20, 120, 220]
    assert [f.seq for f in frames] == [0, 1, 2]
    assert frames[0].image.shape == (48, 64, 3)
    assert frames[0].ref == "clip.avi#0"
    assert source.live is False


def test_video_replay_loops_when_asked(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", [30, 200])
    source = open_source(camera("video:clip.avi", realtime=False, loop=True), tmp_path)
    source.open()
    frames = [source.read() for _ in range(5)]
    source.close()
    assert [round(mean(f.image), -1) for f in frames if f] == [30, 200, 30, 200, 30]
    assert [f.seq for f in frames if f] == [0, 1, 2, 3, 4]


def test_video_frames_carry_timestamps_and_capture_time(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", [50, 60])
    source = open_source(camera(f"video:{tmp_path / 'clip.avi'}", realtime=False), Path("/nonexistent"))
    source.open()
    before = time.time() * 1000
    frame = source.read()
    source.close()
    assert frame is not None
    assert abs(frame.ts_ms - before) < 5000
    assert abs(frame.mono - time.monotonic()) < 5
    assert frame.capture_ms >= 0


def test_realtime_video_is_paced_at_the_files_own_rate(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", [10] * 11, fps=20.0)
    source = open_source(camera("video:clip.avi", realtime=True, fps=1000.0), tmp_path)
    source.open()
    started = time.monotonic()
    frames = read_all(source)
    elapsed = time.monotonic() - started
    source.close()
    assert len(frames) == 11
    assert 0.4 < elapsed < 3.0  # ten periods of 50 ms; wide margins on a shared machine


def test_missing_video_fails_at_open_with_one_line(tmp_path: Path) -> None:
    source = open_source(camera("video:nope.avi"), tmp_path)
    with pytest.raises(CameraError) as info:
        source.open()
    assert "no such file" in str(info.value)
    assert "\n" not in str(info.value)


def test_corrupt_video_fails_at_open_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.avi").write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage" * 50)
    source = open_source(camera("video:bad.avi"), tmp_path)
    with pytest.raises(CameraError) as info:
        source.open()
    assert "cannot decode a frame" in str(info.value)
    assert "\n" not in str(info.value)


def test_dir_replay_reads_images_sorted_by_name_with_file_name_refs(tmp_path: Path) -> None:
    names = write_images(tmp_path / "imgs", [10, 90, 170])
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    source = open_source(camera("dir:imgs", realtime=False), tmp_path)
    source.open()
    frames = read_all(source)
    source.close()
    assert [f.ref for f in frames] == names
    assert [round(mean(f.image)) for f in frames] == [10, 90, 170]
    assert source.read() is None


def test_dir_replay_loops_and_keeps_counting(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", [10, 90])
    source = open_source(camera("dir:imgs", realtime=False, loop=True), tmp_path)
    source.open()
    frames = [source.read() for _ in range(5)]
    assert [f.ref for f in frames if f] == ["img_000.png", "img_001.png"] * 2 + ["img_000.png"]
    assert [f.seq for f in frames if f] == [0, 1, 2, 3, 4]


def test_realtime_dir_replay_is_paced_at_camera_fps(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", [10] * 6)
    source = open_source(camera("dir:imgs", realtime=True, fps=10.0), tmp_path)
    source.open()
    started = time.monotonic()
    assert len(read_all(source)) == 6
    assert 0.35 < time.monotonic() - started < 3.0  # five periods of 100 ms


def test_unpaced_dir_replay_is_fast(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", [10] * 6)
    source = open_source(camera("dir:imgs", realtime=False, fps=1.0), tmp_path)
    source.open()
    started = time.monotonic()
    assert len(read_all(source)) == 6
    assert time.monotonic() - started < 2.0  # at 1 fps, pacing would take 5 s


def test_empty_dir_fails_at_open(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    source = open_source(camera("dir:empty"), tmp_path)
    with pytest.raises(CameraError, match="no images in it"):
        source.open()


def test_missing_dir_fails_at_open(tmp_path: Path) -> None:
    source = open_source(camera("dir:absent"), tmp_path)
    with pytest.raises(CameraError, match="no such directory"):
        source.open()


def test_undecodable_image_is_skipped_and_counted_naming_it(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", [10])
    (tmp_path / "imgs" / "img_999.png").write_bytes(b"\x89PNG broken")
    source = open_source(camera("dir:imgs", realtime=False), tmp_path)
    source.open()
    assert source.read() is not None
    assert source.read() is None  # the broken file is skipped: the replay simply ends
    assert source.skips.summary()["last"]["file"] == "img_999.png"  # type: ignore[attr-defined]


def test_glob_replay_matches_recursively_relative_to_base_dir(tmp_path: Path) -> None:
    write_images(tmp_path / "a", [10])
    write_images(tmp_path / "b", [20, 30], suffix=".jpg")
    source = open_source(camera("glob:**/*.jpg", realtime=False), tmp_path)
    source.open()
    refs = [f.ref for f in read_all(source)]
    assert refs == ["b/img_000.jpg", "b/img_001.jpg"]


def test_glob_matching_nothing_fails_at_open(tmp_path: Path) -> None:
    source = open_source(camera("glob:*.png"), tmp_path)
    with pytest.raises(CameraError, match="no file matches"):
        source.open()


def test_realtime_looping_video_keeps_its_pace_across_the_loop_point(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", [10, 200], fps=20.0)
    source = open_source(camera("video:clip.avi", realtime=True, loop=True), tmp_path)
    source.open()
    started = time.monotonic()
    frames = [source.read() for _ in range(9)]
    elapsed = time.monotonic() - started
    source.close()
    assert [round(mean(f.image), -1) for f in frames if f] == [10, 200] * 4 + [10]
    assert 0.39 < elapsed < 3.0  # eight periods of 50 ms: deadlines are a grid, so never shorter
