"""The real agent on a dir: camera holding bad files (issue 12, cases 9 and 10): a 0-byte PNG,
a text file named .jpg and a PNG whose header claims 20000x20000 are skipped, counted in health
and reported as events; inspection goes on (loop: true) and the huge one is never decoded."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.support.agentproc import AgentProcess, write_config
from tests.support.mosquitto import Mosquitto, Subscriber
from tests.support.paths import DEMO_MODEL
from tests.unit.capture.test_replay_bad_images import _png_header

pytestmark = pytest.mark.integration


def test_bad_images_are_skipped_counted_and_reported_while_inspection_goes_on(
    mosquitto: Mosquitto, unique_prefix: str, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for png in sorted((DEMO_MODEL / "golden").glob("*.png"))[:3]:
        shutil.copy(png, images / png.name)
    (images / "a_empty.png").write_bytes(b"")
    (images / "b_text.jpg").write_text("not an image")
    (images / "c_huge.png").write_bytes(_png_header(20000, 20000))
    root = f"{unique_prefix}/plant-a/line-3/cam-01"
    state = tmp_path / "work" / "state"
    cfg = write_config(
        tmp_path / "work",
        port=mosquitto.port,
        prefix=unique_prefix,
        source=f"dir:{images}",
        camera={"loop": True, "realtime": True, "fps": 20},
        health={"interval_s": 0.5},
    )
    with Subscriber(mosquitto.port, [f"{root}/event"]) as sub, AgentProcess(cfg) as agent:
        skipped = sub.wait_for(3, 30, where=lambda m: b'"image_skipped"' in m[1])
        assert len(skipped) == 3, agent.output[-3000:]
        files = sorted(json.loads(p)["details"]["file"] for _, p, _ in skipped)
        assert files == ["a_empty.png", "b_text.jpg", "c_huge.png"]
        deadline = time.monotonic() + 30
        health: dict[str, object] = {}
        while time.monotonic() < deadline:
            try:
                health = json.loads((state / "health.json").read_text())
            except (OSError, ValueError):
                health = {}
            if health.get("counters", {}).get("inspected", 0) >= 12:  # type: ignore[union-attr]
                break
            assert agent.proc.poll() is None, agent.output[-3000:]
            time.sleep(0.2)
        assert health["counters"]["inspected"] >= 12, health  # type: ignore[index]
        assert health["skipped_images"]["count"] >= 6  # type: ignore[index]  # every pass counts
        assert health["camera"] == "online" and health["system"]["rss_bytes"] < 1 << 30  # type: ignore[index]
        assert agent.proc.poll() is None
