"""Every structlog event name in agent/ is a stable snake_case identifier, never a sentence.

Log lines are searched and counted by event name (``journalctl … | jq 'select(.event == …)'``);
the facts go in keyword fields. The whole tree is scanned and every offender is listed at once.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.paths import REPO

LEVELS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "msg"}
LOGGERS = {"log", "logger", "_log"}  # module loggers: structlog.get_logger(__name__)
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _receiver(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # self.log / self._log
        return node.attr
    return None


def offenders(root: Path, base: Path = REPO) -> list[str]:
    found: list[tuple[str, int, str]] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in LEVELS or _receiver(node.func.value) not in LOGGERS or not node.args:
                continue
            first = node.args[0]
            if (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and not SNAKE.match(first.value)
            ):
                found.append((str(path.relative_to(base)), node.lineno, first.value))
    return [f"{path}:{line}: {name!r}" for path, line, name in sorted(found)]


def test_the_scan_finds_a_sentence_and_accepts_snake_case(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        'log.info("model_loaded", x=1)\nself.log.warning("Camera went away")\nprint("Not a log")\n'
    )
    assert offenders(tmp_path, base=tmp_path) == ["m.py:2: 'Camera went away'"]


def test_every_log_event_name_in_agent_is_snake_case() -> None:
    bad = offenders(REPO / "agent")
    assert not bad, f"{len(bad)} log event names are not snake_case:\n" + "\n".join(bad)
