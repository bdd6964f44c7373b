"""The collector's whole import closure, beside the per-package table in test_layering.py.

- ``agent.collector`` runs on a server, not a device: it imports the contract, the factory and
  the basics, never capture, pipeline, model, runtimes, sampling or publish code - not even
  through another module (the whole import closure is checked).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from tests.support.paths import REPO

AGENT = REPO / "agent"
BASICS = ("agent.errors", "agent.config", "agent.log", "agent.sdnotify")
COLLECTOR_MAY_IMPORT = ("agent.collector", "agent.protocol", "agent.mqtt", "agent.web", *BASICS)
DEVICE_ONLY = ("capture", "pipeline", "model", "runtimes", "sampling", "publish", "drift", "health", "app")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_of(package: str) -> list[Path]:
    root = REPO / package.replace(".", "/")
    return sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]


def within(name: str, allowed: tuple[str, ...]) -> bool:
    return name == "agent" or any(name == a or name.startswith(a + ".") for a in allowed)


@cache
def agent_imports(path: Path) -> frozenset[str]:
    """Every ``agent.…`` module ``path`` imports (``from agent import x`` counts as ``agent.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "agent")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "agent":
                found.update(f"agent.{a.name}" for a in node.names)
            elif node.module.startswith("agent."):
                found.add(node.module)
    return frozenset(found)


def source_of(name: str) -> Path | None:
    base = REPO / name.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None  # a name imported from a module (``from agent.config import Secret``)


def parents(name: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a/__init__``, ``a.b/__init__`` too."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def closure(package: str) -> set[str]:
    seen: set[str] = set()
    todo = [module_name(p) for p in modules_of(package)]
    while todo:
        name = todo.pop()
        for mod in parents(name):
            path = source_of(mod)
            if mod in seen or path is None:
                continue
            seen.add(mod)
            todo.extend(agent_imports(path))
    return seen


def test_nothing_the_collector_runs_is_device_code() -> None:
    reached = closure("agent.collector")
    device = sorted(m for m in reached if m.split(".")[1:2] and m.split(".")[1] in DEVICE_ONLY)
    assert not device, f"the collector reaches device code: {device}"
    assert "agent.protocol.wire" in reached and "agent.mqtt.client" in reached  # the check sees imports


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The rule above is only worth something if a violation is caught (lazy import included)."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from agent.publish.mqtt import Publisher\n    from agent import model\n")
    assert agent_imports(path) == {"agent.publish.mqtt", "agent.model"}
    assert not within("agent.publish.mqtt", COLLECTOR_MAY_IMPORT)
