"""YAML bombs (billion laughs, deep nesting, huge files) give a one-line ``file:line`` error within a second.

Every loader that reads a YAML file the operator or a package author wrote goes through
agent/config/loader.py: the agent's and the collector's configs and model manifests, plus the
``check``, ``run``, ``model validate`` and ``collector`` commands that start from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.collector.config import load_collector_config
from agent.config import load_config
from agent.config.loader import MAX_YAML_BYTES
from agent.errors import AgentError, ConfigError, ModelError
from agent.model.manifest import read_manifest
from tests.support.agentproc import run_agent

LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["camera: *i"]
)
DEEP = "camera: " + "[" * 20000 + "]" * 20000 + "\n"


def bomb(tmp_path: Path, kind: str) -> Path:
    text = {"laughs": LAUGHS, "deep": DEEP, "deep_maps": "x: " + "{a: " * 20000 + "1" + "}" * 20000}[kind]
    path = tmp_path / "manifest.yaml"
    path.write_text(text + "\n")
    return path


def _one_line_error(load: Callable[[Path], Any], path: Path, error: type[AgentError]) -> str:
    started = time.process_time()  # CPU seconds: what the bomb costs, whatever the machine's load
    with pytest.raises(error) as err:
        load(path)
    assert time.process_time() - started < 1.0
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{path}:"), text
    return text


@pytest.mark.parametrize("kind", ["laughs", "deep", "deep_maps"])
@pytest.mark.parametrize(
    ("load", "error"),
    [
        (load_config, ConfigError),
        (load_collector_config, ConfigError),
        (read_manifest, ModelError),
    ],
)
def test_a_yaml_bomb_is_refused_quickly_with_file_and_line(
    tmp_path: Path, kind: str, load: Callable[[Path], Any], error: type[AgentError]
) -> None:
    text = _one_line_error(load, bomb(tmp_path, kind), error)
    assert ("nested" in text) if kind.startswith("deep") else ("aliases" in text), text


def test_a_file_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("# padding\n" * (MAX_YAML_BYTES // 10 + 1))
    text = _one_line_error(load_config, path, ConfigError)
    assert "larger than" in text


def test_anchors_and_merge_keys_of_a_normal_config_still_work(tmp_path: Path) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(
        "storage: {root: store}\nsubscribe: {sites: &s [a, b]}\ndevices: {allowed_prefixes: *s}\n"
        "broker: &b {port: 1884}\nlimits: {<<: {max_bytes: 2048}, batch: 4}\n"
    )
    cfg = load_collector_config(path)
    assert cfg.devices.allowed_prefixes == ["a", "b"] and cfg.limits.max_bytes == 2048


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--config", "{path}"],
        ["run", "--config", "{path}"],
        ["collector", "--config", "{path}"],
        ["model", "validate", "{dir}"],
    ],
)
@pytest.mark.parametrize("kind", ["laughs", "deep"])
def test_commands_fail_with_one_error_line(tmp_path: Path, kind: str, args: list[str]) -> None:
    """``check``/``run``/``collector`` exit 2 (config error); ``model validate`` prints FAIL and exits 1."""
    path = bomb(tmp_path, kind)
    done = run_agent([a.format(path=path, dir=path.parent) for a in args], timeout=30)
    out = (done.stdout + done.stderr).strip()
    assert done.returncode in (1, 2), out[-2000:]
    errors = [line for line in out.splitlines() if f"{path}:" in line]
    assert len(errors) == 1 and len(out.splitlines()) <= 2, out[-2000:]
    assert "Traceback" not in out and "MemoryError" not in out
