"""The ``web:`` section: off by default, refused on a public address without users, and lazy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.config import load_config
from agent.errors import ConfigError
from tests.support.paths import DEMO_MODEL, REPO


def write(tmp_path: Path, web: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(textwrap.dedent(f"""\
        device: {{id: cam-01, site: s, line: l}}
        camera: {{source: "synthetic:1"}}
        model: {{path: {DEMO_MODEL}}}
        outbox: {{path: {tmp_path / "outbox.db"}}}
        state: {{dir: {tmp_path / "state"}}}
        """) + web)  # fmt: skip
    return path


def test_web_is_off_unless_listen_is_set(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).web.listen is None


def test_a_public_address_without_a_users_file_is_refused_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, 'web: {listen: "0.0.0.0:8080"}\n'))
    (problem,) = err.value.problems
    assert "web.auth.users_file" in problem and "not loopback" in problem and "\n" not in problem


def test_a_public_address_with_a_users_file_and_loopback_without_are_accepted(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, 'web: {listen: "0.0.0.0:8080", auth: {users_file: users.yaml}}\n'))
    assert cfg.web.port == 8080
    assert load_config(write(tmp_path, 'web: {listen: "127.0.0.1:0"}\n')).web.host == "127.0.0.1"


@pytest.mark.parametrize(
    "web", ['web: {listen: "nonsense"}\n', 'web: {listen: "127.0.0.1:1", preview_fps: 0}\n']
)
def test_bad_web_settings_are_refused(tmp_path: Path, web: str) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, web))


LAZY = """
import sys
from agent.config import load_config
from agent.app import Agent
agent = Agent(load_config(sys.argv[1]))
print(len(agent.observers.health()))
loaded = sorted(m for m in ("starlette", "uvicorn", "jinja2", "multipart") if m in sys.modules)
print("LOADED", ",".join(loaded))
"""


def run_lazy(config: Path) -> subprocess.CompletedProcess[str]:
    """Build the agent in a fresh interpreter (a clean sys.modules) and list the web modules loaded."""
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-c", LAZY, str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False)


def test_with_web_off_the_agent_imports_nothing_of_the_web_stack(tmp_path: Path) -> None:
    config = write(tmp_path, "mqtt: {port: 1}\n")
    out = run_lazy(config)
    assert out.returncode == 0, out.stderr
    assert "LOADED \n" in out.stdout, out.stdout


def test_with_web_on_the_console_is_an_observer(tmp_path: Path) -> None:
    config = write(tmp_path, 'mqtt: {port: 1}\nweb: {listen: "127.0.0.1:0"}\n')
    out = run_lazy(config)
    assert out.returncode == 0, out.stderr
    assert "starlette" in out.stdout and "uvicorn" in out.stdout
