"""scripts/demo.py's summary names caught, missed, false alarms and class errors; demo.sh's help is true."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

from tests.support.paths import REPO


def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_script", REPO / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("demo_script", module)
    spec.loader.exec_module(module)
    return module


def test_summary_counts_every_kind_of_outcome() -> None:
    truth = ["ok", "hole", "ok", "scratch", "crack", "ok"]
    events = [
        {"frame": 1, "label": "hole"},  # caught
        {"frame": 2, "label": "spot"},  # false alarm
        {"frame": 3, "label": "crack"},  # caught, wrong class
    ]
    lines = demo().summarize(truth, events).splitlines()
    assert lines[0] == "defective parts in the clip: 3"
    assert lines[1].split() == ["caught:", "2"]
    assert lines[2].split()[:2] == ["missed:", "1"] and "(frames 4)" in lines[2]
    assert lines[3].split()[:3] == ["false", "alarms:", "1"] and "(frames 2)" in lines[3]
    assert lines[4].split()[:3] == ["class", "errors:", "1"] and "(frames 3)" in lines[4]


def test_a_clean_run_lists_no_frames() -> None:
    text = demo().summarize(["ok", "hole"], [{"frame": 1, "label": "hole"}])
    assert "missed:       0\n" in text and "false alarms: 0 (" in text and "frames" not in text


def test_demo_sh_advertises_only_options_demo_py_has() -> None:
    usage = next(
        line for line in (REPO / "scripts/demo.sh").read_text().splitlines() if "scripts/demo.sh [" in line
    )
    advertised = set(re.findall(r"--[a-z-]+", usage)) - {"--help"}
    source = (REPO / "scripts/demo.py").read_text()
    assert advertised and all(f'"{flag}"' in source for flag in advertised), advertised
