"""Every import in agent/ follows the allowed-imports table in docs/architecture.md.

The table lives in the document so the rule a reader sees is the rule the test
enforces. Imports inside functions and under ``TYPE_CHECKING`` count: a lazy import
is still a dependency, only a later one.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO

DOC = REPO / "docs" / "architecture.md"
START, END = "<!-- layering-table:start -->", "<!-- layering-table:end -->"
ANY = "any"


@dataclass(frozen=True)
class Rules:
    layer: dict[str, str]  # package -> its layer
    allowed: dict[str, frozenset[str]]  # package -> packages it may import (ANY: everything)


def read_rules(text: str) -> Rules:
    """Parse the table: `package` | layer | `names` and *layers* it may import."""
    body = text.split(START, 1)[1].split(END, 1)[0]
    rows = [line.split("|")[1:4] for line in body.strip().splitlines()[2:]]
    layer = {_names(pkg)[0]: lay.strip() for pkg, lay, _ in rows}
    allowed: dict[str, frozenset[str]] = {}
    for pkg, _, may in rows:
        groups = set(re.findall(r"\*(\w+)\*", may))
        unknown = groups - set(layer.values()) - {ANY}
        assert not unknown, f"{DOC.name}: row {pkg.strip()} names unknown layers {unknown}"
        members = {p for p, lay in layer.items() if lay in groups}
        allowed[_names(pkg)[0]] = frozenset({ANY} if ANY in groups else members | set(_names(may)))
    return Rules(layer, allowed)


def _names(cell: str) -> list[str]:
    return re.findall(r"`([\w.]+)`", cell)


def package_of(module: str, agent_dir: Path) -> str:
    """``agent.model.loaded`` -> ``model``; ``agent`` and names defined in its ``__init__`` -> ``agent``."""
    parts = module.split(".")
    if len(parts) < 2:
        return "agent"
    name = parts[1]
    exists = (agent_dir / name).is_dir() or (agent_dir / f"{name}.py").is_file()
    return name if exists or len(parts) > 2 else "agent"


def module_name(path: Path, agent_dir: Path) -> str:
    rel = path.relative_to(agent_dir.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_modules(path: Path, agent_dir: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every import of an ``agent`` module, wherever it appears."""
    this = module_name(path, agent_dir)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from agent import x` imports module x when there is one
            yield from ((node.lineno, f"{base}.{alias.name}") for alias in node.names)


def violations(agent_dir: Path, rules: Rules) -> list[str]:
    found: list[str] = []
    for path in sorted(agent_dir.rglob("*.py")):
        rel = path.relative_to(agent_dir.parent)
        src = package_of(module_name(path, agent_dir), agent_dir)
        if src not in rules.allowed:
            found.append(f"{rel}: package `{src}` has no row in the table (place it in a layer)")
            continue
        allowed = rules.allowed[src]
        for line, module in imported_modules(path, agent_dir):
            if module.split(".")[0] != "agent":
                continue
            dst = package_of(module, agent_dir)
            if dst != src and ANY not in allowed and dst not in allowed:
                found.append(f"{rel}:{line}: `{src}` ({rules.layer[src]}) imports `{dst}` ({module})")
    return found


def cycle(rules: Rules) -> list[str]:
    """A cycle in the allowed-imports graph, or [] when the table is one-way."""
    graph = {p: [d for d in allowed if d not in (p, ANY)] for p, allowed in rules.allowed.items()}
    done: set[str] = set()

    def visit(path: list[str]) -> list[str]:
        for d in graph.get(path[-1], []):
            if d in path:
                return [*path[path.index(d) :], d]
            if d not in done and (found := visit([*path, d])):
                return found
        done.add(path[-1])
        return []

    for p in graph:
        if p not in done and (found := visit([p])):
            return found
    return []


RULES = read_rules(DOC.read_text())


def test_every_import_in_agent_follows_the_table() -> None:
    found = violations(REPO / "agent", RULES)
    if found:  # every violation in one message, not only the first
        pytest.fail(f"{len(found)} imports break the table in docs/architecture.md:\n" + "\n".join(found))


def test_the_table_is_one_way() -> None:
    assert cycle(RULES) == []


def test_lower_layers_never_import_the_higher_ones() -> None:
    """The edges the issue names, stated here too, so a loosened table is caught."""
    for low in ("runtimes", "capture", "fsutil", "errors", "log", "config", "protocol"):
        assert not RULES.allowed[low] & {"model", "pipeline", "publish", "app"}, low
    assert RULES.allowed["model"] <= {*RULES.allowed["runtimes"], "runtimes", "protocol", "events"}
    assert RULES.allowed["collector"] <= {*RULES.allowed["protocol"], "protocol", "mqtt", "web"}


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "agent"


def test_the_check_sees_lazy_type_checking_relative_and_from_agent_imports(tmp_path: Path) -> None:
    agent = _tree(
        tmp_path,
        {
            "agent/__init__.py": "__version__ = '1'\n",
            "agent/errors.py": "",
            "agent/model/__init__.py": "",
            "agent/runtimes/__init__.py": "from agent import __version__\nfrom agent import errors\n",
            "agent/runtimes/lazy.py": "def f():\n    from agent.model import x\n",
            "agent/runtimes/typed.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import agent.model\n"
            ),
            "agent/runtimes/rel.py": "from ..model import y\nfrom . import lazy\n",
            "agent/runtimes/sub/deep.py": "from ... import model\n",
            "agent/newpkg/__init__.py": "",
        },
    )
    rules = read_rules(DOC.read_text())
    found = violations(agent, rules)
    assert found == [
        "agent/newpkg/__init__.py: package `newpkg` has no row in the table (place it in a layer)",
        "agent/runtimes/lazy.py:2: `runtimes` (parts) imports `model` (agent.model.x)",
        "agent/runtimes/rel.py:1: `runtimes` (parts) imports `model` (agent.model.y)",
        "agent/runtimes/sub/deep.py:1: `runtimes` (parts) imports `model` (agent.model)",
        "agent/runtimes/typed.py:3: `runtimes` (parts) imports `model` (agent.model)",
    ]


def test_a_cycle_in_the_table_is_found() -> None:
    text = DOC.read_text().replace("| `errors` | basics | — |", "| `errors` | basics | `log` |")
    assert cycle(read_rules(text)) in (["errors", "log", "errors"], ["log", "errors", "log"])


def test_an_unknown_layer_in_the_table_is_refused() -> None:
    row = "| `model` | inference | *basics*, *nonsense* |"
    text = DOC.read_text().replace("| `model` | inference | *basics*, *contract*, `runtimes` |", row)
    assert row in text
    with pytest.raises(AssertionError, match="unknown layers"):
        read_rules(text)
