"""The inference thread first when it is the bottleneck: the decision, and real thread priorities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from agent.pipeline.priority import Favour

REPO = Path(__file__).resolve().parents[3]


class Clocks:
    """Wall, inference-thread and process CPU clocks that the test moves by hand."""

    def __init__(self) -> None:
        self.wall = self.mine = self.process = 0.0
        self.applied: list[tuple[int, int]] = []
        self.done_while_applying: list[bool] = []  # what another thread reading `applied` saw meanwhile

    def favour(self, **kw: float) -> Favour:
        kw.setdefault("window_s", 2.0)

        def apply(nice: int, keep: int) -> int:
            self.applied.append((nice, keep))
            self.done_while_applying.append(favour.applied)
            return 3

        favour = Favour(now=lambda: self.wall, thread_time=lambda: self.mine,
                      process_time=lambda: self.process, apply=apply, **kw)  # type: ignore[arg-type]  # fmt: skip
        return favour

    def frames(self, f: Favour, n: int, *, invoke_s: float, others_s: float, wall_s: float) -> None:
        """``n`` frames, each taking ``invoke_s`` of inference-thread CPU, ``others_s`` of CPU
        elsewhere in the process and ``wall_s`` of wall time."""
        for _ in range(n):
            self.wall += wall_s
            self.mine += invoke_s
            self.process += invoke_s + others_s
            f.note()


def test_lowers_the_others_once_after_three_windows_with_the_inference_thread_the_bottleneck() -> None:
    c = Clocks()
    f = c.favour()
    c.frames(f, 1, invoke_s=0.005, others_s=0.002, wall_s=0.006)  # the first note only starts a window
    c.frames(f, 2 * 333, invoke_s=0.005, others_s=0.002, wall_s=0.006)  # two windows of 2 s
    assert c.applied == [] and not f.applied
    c.frames(f, 340, invoke_s=0.005, others_s=0.002, wall_s=0.006)
    assert f.applied and len(c.applied) == 1 and c.applied[0][0] == 5
    assert c.done_while_applying == [False]  # `applied` means the threads are already lowered
    assert f.last["busy"] == pytest.approx(0.833, abs=0.01)
    assert f.last["invoke_cpu_ms"] == pytest.approx(5.0, abs=0.05)
    assert f.last["others_cpu_ms"] == pytest.approx(2.0, abs=0.05)
    c.frames(f, 2000, invoke_s=0.005, others_s=0.002, wall_s=0.006)
    assert len(c.applied) == 1  # once for the life of the process


@pytest.mark.parametrize(
    ("invoke_s", "others_s", "why"),
    [
        (0.003, 0.004, "the capture side needs more CPU than the invoke (MobileNetV2 TFLite, noisy H.264)"),
        (0.002, 0.001, "the inference thread waits for frames most of the time (a decode-bound line)"),
    ],
)
def test_leaves_priorities_alone_when_the_inference_thread_is_not_the_bottleneck(
    invoke_s: float, others_s: float, why: str
) -> None:
    c = Clocks()
    f = c.favour()
    c.frames(f, 5000, invoke_s=invoke_s, others_s=others_s, wall_s=0.0035)
    assert c.applied == [], why


def test_one_window_off_the_bottleneck_starts_the_count_again() -> None:
    c = Clocks()
    f = c.favour()
    c.frames(f, 1 + 2 * 333, invoke_s=0.005, others_s=0.002, wall_s=0.006)  # two good windows
    c.frames(f, 400, invoke_s=0.005, others_s=0.006, wall_s=0.006)  # a burst of work elsewhere
    c.frames(f, 2 * 333, invoke_s=0.005, others_s=0.002, wall_s=0.006)
    assert c.applied == []
    c.frames(f, 340, invoke_s=0.005, others_s=0.002, wall_s=0.006)
    assert len(c.applied) == 1


def test_disabled_never_measures() -> None:
    c = Clocks()
    f = c.favour(enabled=False)
    c.frames(f, 5000, invoke_s=0.005, others_s=0.001, wall_s=0.005)
    assert c.applied == [] and f.last == {}


_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from tests.unit.pipeline.conftest import frames_dir, slow_package
    from tests.unit.pipeline import test_priority as t
    tmp = Path(sys.argv[2]); iterations = int(sys.argv[3])
    pkg = slow_package(tmp / "pkg", iterations)
    frames = frames_dir(tmp / "frames", 10)
    print(json.dumps(t.run_child(tmp, pkg, frames)))
    """
)


def run_child(tmp: Path, package: Path, frames: Path) -> dict[str, object]:
    """Run a real pipeline in this (child) process until the decision or 6 s; report the nice value
    of each of its stage threads and of the process's main thread."""
    from tests.unit.pipeline.conftest import Builder

    h = Builder(tmp)(f"dir:{frames}", package, camera={"loop": True})
    # Short windows; busy 0.3 so that a loaded CI machine still decides (the threshold itself is
    # the unit tests' business): what this checks is the real threads' priorities.
    h.pipeline.favour = Favour(window_s=0.25, windows=2, busy=0.3)
    stop = threading.Event()
    pulses = threading.Thread(target=stop.wait, name="line-pulses", daemon=True)  # a timing thread
    pulses.start()
    h.pipeline.start()
    try:
        h.run_until(lambda: h.pipeline.favour.applied, timeout=6.0)
        threads = {name: t.native_id for name, t in h.pipeline._threads.items()}
        threads["line-pulses"] = pulses.native_id
        nice = {name: os.getpriority(os.PRIO_PROCESS, tid) for name, tid in threads.items() if tid}
        nice["main"] = os.getpriority(os.PRIO_PROCESS, 0)  # this thread
        return {"applied": h.pipeline.favour.applied, "nice": nice, "scheduling": h.pipeline.scheduling()}
    finally:
        stop.set()
        h.pipeline.stop()


def _child(tmp_path: Path, iterations: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(REPO), str(tmp_path), str(iterations)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread priorities are Linux's")
def test_a_slow_model_gets_the_cpu_first_and_its_thread_keeps_its_priority(tmp_path: Path) -> None:
    """A real pipeline in a child process (the decision changes every thread of the process it
    runs in): a model whose invoke keeps the inference thread busy, small PNG frames. The capture,
    publish and main threads end up 5 nice steps lower; the inference thread keeps its own."""
    got = _child(tmp_path, iterations=4000)
    assert got["applied"], got
    nice = got["nice"]
    assert isinstance(nice, dict)
    assert nice["infer"] == nice["line-pulses"] == 0  # the reject pulses keep their timing
    assert nice["capture"] == nice["publish"] == nice["main"] == 5
    assert got["scheduling"] == {"preprocess": "capture", "priority": "favoured"}  # as health reports it


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread priorities are Linux's")
def test_a_light_model_changes_no_priority(tmp_path: Path) -> None:
    got = _child(tmp_path, iterations=1)
    assert not got["applied"], got
    assert isinstance(got["scheduling"], dict) and got["scheduling"]["priority"] == "watching"
    nice = got["nice"]
    assert isinstance(nice, dict)
    assert set(nice.values()) == {0}


def test_a_refused_setpriority_is_one_warning_and_no_retry() -> None:
    """Under a seccomp filter without setpriority (EPERM) nothing is lowered: one warning."""
    from structlog.testing import capture_logs

    c = Clocks()
    calls: list[int] = []

    def refuse(nice: int, keep: int) -> int:
        calls.append(nice)
        return 0

    f = Favour(now=lambda: c.wall, thread_time=lambda: c.mine, process_time=lambda: c.process,
               apply=refuse, window_s=2.0)  # fmt: skip
    with capture_logs() as logs:
        c.frames(f, 5000, invoke_s=0.005, others_s=0.002, wall_s=0.006)
    assert calls == [5]
    assert [e["event"] for e in logs] == ["inference_priority_refused"]
    assert logs[0]["log_level"] == "warning"
