"""The live status document the console's page polls (``/api/live``) and ``/api/status`` carries.

Built at request time from what the agent already keeps: counters and latency windows of the
pipeline (read without draining them: the health reporter owns the interval marks), the
publisher's state, the drift monitor's section and the console's own setup figures.
"""

from __future__ import annotations

from typing import Any

from agent.console.draw import input_region
from agent.console.host import Host
from agent.console.live import LiveView
from agent.pipeline.stats import RateMeter


class LiveStatus:
    def __init__(self, host: Host, view: LiveView) -> None:
        self.host = host
        self.view = view
        self._rate = RateMeter()

    def doc(self) -> dict[str, Any]:
        host, view = self.host, self.view
        cfg = host.cfg
        model = host.slot.model
        manifest = model.package.manifest
        counters = host.pipeline.counters.snapshot()
        pub = host.publisher.stats()
        picture = view.picture
        return {
            "device": cfg.device.id,
            "camera": host.camera_state,
            "mode": cfg.camera.mode,
            "model": {**model.summary, "task": manifest.task},
            "fps": round(self._rate.update(counters["inspected"]), 2),
            "budget_ms": cfg.inference.budget_ms or manifest.budget_ms,
            "latency_ms": host.pipeline.latency.percentiles((50, 95)),
            "counters": counters,
            "drift": host.observers.section("drift"),
            "broker": {
                "connected": bool(pub.get("connected")),
                "outbox_depth": int(pub.get("outbox_depth", 0)),
                "last_error": pub.get("last_error"),
            },
            "viewers": view.viewers.count,
            "setup": view.setup.figures,
            "input_region": _region(view, picture is not None),
            "last": None if picture is None else {
                "seq": picture.seq, "frame": picture.payload["frame"], "label": picture.payload["label"],
                "score": picture.payload["score"], "defect": picture.payload["defect"],
                "latency_ms": picture.payload["latency_ms"], "ts": picture.payload["ts"],
            },
        }  # fmt: skip


def _region(view: LiveView, known: bool) -> dict[str, float] | None:
    """The model's input region as fractions of the frame (drawn on the live picture too)."""
    frame = view.setup.figures.get("frame")
    if not known or not frame:
        return None
    w, h = frame["width"], frame["height"]
    x0, y0, x1, y1 = input_region(view.spec, w, h)
    return {"x0": x0 / w, "y0": y0 / h, "x1": x1 / w, "y1": y1 / h}
