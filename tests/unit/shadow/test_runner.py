"""The shadow runner on real models: the demo package (active) against a fixture classifier.

The fixture (tests/fixtures/models/cls_nhwc.onnx, labels ok/scratch/spot) calls every golden
image of the demo package ``ok``, so the pair agrees exactly on the demo's ``ok`` frames: a known
disagreeing pair whose figures the test also computes on its own, model by model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.capture.base import Frame
from agent.config.observers import DedupConfig, SamplingConfig, SamplingPolicyConfig, ShadowConfig
from agent.config.schema import DeviceConfig, ModelConfig
from agent.events import EventKind
from agent.model.loaded import LoadedModel, load_model
from agent.protocol.payloads import ResultPayload, result_payload
from agent.sampling import Sampler, Wire
from agent.shadow.runner import ShadowRunner
from agent.testing import RecordingSink
from tests.support.models import make_package
from tests.support.paths import DEMO_MODEL, REPO

DEVICE = DeviceConfig(id="cam-01", site="plant-a", line="line-3")
GOLDEN = sorted((DEMO_MODEL / "golden").glob("*.png"))
MODEL_CFG = ModelConfig(path="unused", warmup_runs=1)


def fixture_package(root: Path, version: str = "0.1.0") -> Path:
    model = REPO / "tests" / "fixtures" / "models" / "cls_nhwc.onnx"
    labels = ["ok", "scratch", "spot"]
    return make_package(root, model, name="fixture", version=version, labels=labels, width=32, height=32)


@pytest.fixture(scope="module")
def demo() -> LoadedModel:
    return load_model(str(DEMO_MODEL), MODEL_CFG)


def load(path: str) -> LoadedModel:
    return load_model(path, MODEL_CFG)


class Line:
    """Frames through the active model, as the publish stage hands them to observers."""

    def __init__(self, model: LoadedModel, interval_ms: float = 33.0, infer_ms: float = 2.0) -> None:
        self.model, self.interval, self.infer_ms = model, interval_ms / 1000.0, infer_ms
        self.seq = 0

    def frame(self, image: np.ndarray) -> tuple[Frame, Any, ResultPayload]:
        frame = Frame(
            image, seq=self.seq, ts_ms=1767225600000 + self.seq, mono=1000.0 + self.seq * self.interval
        )
        self.seq += 1
        result = self.model.infer(image)
        latency = (0.0, 0.0, 0.5, self.infer_ms, 0.2, self.infer_ms + 1)
        payload = result_payload(
            device=DEVICE,
            frame=frame,
            result=result,
            model=self.model.summary,
            latency=latency,
            budget_ms=50.0,
        )
        return frame, result, payload


@pytest.fixture
def runners() -> Iterator[Callable[..., tuple[ShadowRunner, RecordingSink]]]:
    made: list[ShadowRunner] = []

    def make(
        path: Path, *, busy: bool = False, offer: Any = (), **settings: Any
    ) -> tuple[ShadowRunner, RecordingSink]:
        sink = RecordingSink()
        runner = ShadowRunner(
            ShadowConfig(**{"window_s": 1.0, "max_latency_ms": 10_000.0, **settings}),
            path=path,
            load=load,
            busy=lambda: busy,
            budget_ms=lambda: 50.0,
            publish=lambda doc: sink.publish("shadow", repr(doc).encode(), qos=1, priority=0),  # type: ignore[arg-type]
            emit=sink,
            offer=offer,
        )
        made.append(runner)
        assert runner.wait_idle(30), "the shadow never finished loading"
        return runner, sink

    yield make
    for runner in made:
        runner.close(5)


def feed(runner: ShadowRunner, line: Line, images: list[np.ndarray]) -> None:
    for image in images:
        runner.observe(*line.frame(image))
        assert runner.wait_idle(10)


def test_agreement_overall_and_per_class_on_a_known_disagreeing_pair(
    tmp_path: Path, demo: LoadedModel, runners: Any
) -> None:
    path = fixture_package(tmp_path / "fixture")
    runner, sink = runners(path)
    assert runner.state == "running", runner.reason
    images = [cv2.imread(str(p)) for p in GOLDEN] * 2
    feed(runner, Line(demo), images)

    shadow = load(str(path))
    pairs = [(demo.infer(im).label, shadow.infer(im).label) for im in images]
    assert any(a == s for a, s in pairs) and any(a != s for a, s in pairs), (
        "the pair must both agree and differ"
    )
    figures = runner.health()
    assert figures["frames"] == len(images)
    assert figures["agreement"] == round(sum(a == s for a, s in pairs) / len(pairs), 4) == 0.2
    for label in {a for a, _ in pairs}:
        mine = [a == s for a, s in pairs if a == label]
        assert figures["per_class"][label] == {
            "frames": len(mine),
            "agreement": round(sum(mine) / len(mine), 4),
        }
    assert (
        figures["per_class"]["ok"]["agreement"] == 1.0 and figures["per_class"]["crack"]["agreement"] == 0.0
    )
    assert {d["shadow"] for d in figures["disagreements"]} == {"ok"}
    assert figures["latency_ms"]["p50"] > 0 and figures["model"]["name"] == "fixture"
    assert [e.kind for e in sink.events] == [EventKind.SHADOW]  # "running"


def test_the_window_summary_is_published_and_starts_over(
    tmp_path: Path, demo: LoadedModel, runners: Any
) -> None:
    runner, sink = runners(fixture_package(tmp_path / "fixture"))
    feed(runner, Line(demo), [cv2.imread(str(GOLDEN[0]))] * 3)
    window = runner.window(runner.tally.take_window(), 60.0)
    assert window["window"]["frames"] == 3 and window["frames"] == 3 and window["state"] == "running"
    assert runner.tally.take_window()["frames"] == 0 and runner.health()["frames"] == 3
    runner._window_started -= 2.0  # the window is over
    runner.tick()
    assert [m.topic for m in sink.messages] == ["shadow"]


def test_disagreements_are_offered_to_the_sampler(tmp_path: Path, demo: LoadedModel, runners: Any) -> None:
    recorder = RecordingSink()
    off = SamplingPolicyConfig(enabled=False)
    cfg = SamplingConfig(
        enabled=True,
        low_confidence=off,
        random=off,
        disagreement=SamplingPolicyConfig(enabled=True),
        dedup=DedupConfig(enabled=False),
        log_file=False,
    )
    wire = Wire(topic="p/sample", qos=1, max_packet_bytes=1 << 20, mqtt5=False)
    sampler = Sampler(cfg, sink=recorder, wire=wire, device=DEVICE)
    runner, _ = runners(fixture_package(tmp_path / "fixture"), offer=[sampler.offer])
    line = Line(demo)
    images = [cv2.imread(str(p)) for p in GOLDEN]
    feed(runner, line, images)
    runner.observe(*line.frame(images[0]))  # the last disagreement is handed over with the next frame
    assert sampler.flush(10)
    sampler.close(5)
    disagreeing = [p for p in GOLDEN if not p.name.startswith("ok")]
    stats = sampler.stats()
    assert stats["by_policy"] == {"disagreement": len(disagreeing)} and stats["sent"] == len(disagreeing)
    assert stats["fired"]["disagreement"] == len(disagreeing)


def test_nothing_runs_while_the_line_is_busy_or_without_free_time(
    tmp_path: Path, demo: LoadedModel, runners: Any
) -> None:
    image = cv2.imread(str(GOLDEN[0]))
    busy, _ = runners(fixture_package(tmp_path / "a"), busy=True)
    feed(busy, Line(demo), [image] * 5)
    assert busy.health()["frames"] == 0 and busy.skipped["pipeline_busy"] == 5

    tight, _ = runners(fixture_package(tmp_path / "b"))
    feed(tight, Line(demo, interval_ms=10.0, infer_ms=9.9), [image] * 5)  # 10 ms frames, 10 ms of ours
    assert (
        tight.health()["frames"] <= 1 and tight.skipped["no_headroom"] >= 4
    )  # the first frame has no interval yet


def test_a_shadow_still_running_skips_the_next_frame(tmp_path: Path, demo: LoadedModel, runners: Any) -> None:
    runner, _ = runners(fixture_package(tmp_path / "fixture"))
    line = Line(demo)
    image = cv2.imread(str(GOLDEN[0]))
    runner._job = object()  # type: ignore[assignment]  # as if the shadow thread were still on a frame
    runner.observe(*line.frame(image))
    runner._job = None
    assert runner.skipped["shadow_busy"] == 1


def test_a_shadow_that_cannot_load_stops_with_a_reason_and_an_event(
    tmp_path: Path, demo: LoadedModel, runners: Any
) -> None:
    broken = fixture_package(tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"not a model")
    runner, sink = runners(broken)
    assert runner.state == "failed" and "sha256 mismatch" in runner.reason
    assert [e.kind for e in sink.events] == [EventKind.SHADOW] and sink.events[0].details_dict()[
        "state"
    ] == "failed"
    runner.observe(*Line(demo).frame(cv2.imread(str(GOLDEN[0]))))
    assert runner.health()["frames"] == 0

    missing, _ = runners(tmp_path / "nowhere")
    assert missing.state == "failed" and "nowhere" in missing.reason


def test_a_shadow_slower_than_the_limit_stops(tmp_path: Path, runners: Any) -> None:
    runner, sink = runners(fixture_package(tmp_path / "fixture"), max_latency_ms=0.0001)
    assert runner.state == "too_slow" and "over the 0.0 ms limit" in runner.reason
    assert sink.events[-1].details_dict()["state"] == "too_slow"
    assert runner.model is None  # unloaded: it costs nothing more


def test_when_the_shadow_becomes_the_active_model_it_stands_down(tmp_path: Path, runners: Any) -> None:
    path = fixture_package(tmp_path / "fixture")
    runner, sink = runners(path)
    promoted = load(str(path))
    image = cv2.imread(str(GOLDEN[0]))
    runner.observe(*Line(promoted).frame(image))
    assert runner.state == "promoted" and runner.health()["frames"] == 0
    assert sink.events[-1].details_dict()["state"] == "promoted"
    deadline = time.monotonic() + 5
    while runner.model is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.model is None
