"""Read a YAML file into plain values while remembering the line of every key.

``${NAME}`` in a string is replaced by the environment variable NAME (an unset
variable is a config error with its line); ``${NAME:-default}`` gives a default.
Secrets are therefore never written in the file itself.

Bounded, because a config or a model manifest may come from someone else: the file size
(:data:`MAX_YAML_BYTES`), the nesting depth (:data:`MAX_DEPTH`, checked on the parser's event
stream, which is not recursive, before PyYAML's recursive composer sees the document) and the
number of values after alias expansion (:data:`MAX_VALUES`: a 1 KB "billion laughs" expands to
10^9). Each limit gives one ``file:line`` error, within a second.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from agent.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

MAX_YAML_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 100_000


class YamlDocument:
    """Plain values of one YAML document plus the source line of each key path."""

    def __init__(
        self, filename: str, data: Any, lines: dict[tuple[str, ...], int], problems: list[str]
    ) -> None:
        self.filename = filename
        self.problems = problems  # environment variables that were not set, duplicate keys
        self.data = data
        self._lines = lines

    def line_of(self, path: tuple[str, ...]) -> int:
        """Line of the deepest known key on ``path`` (1 for the document itself)."""
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get((), 1)


def read_yaml(path: str | Path, *, expand_env: bool = True) -> YamlDocument:
    """Parse ``path``; raise :class:`ConfigError` with ``file:line`` when it is not YAML.

    Problems that do not stop parsing (an unset environment variable, a duplicate key) are
    collected in ``problems`` so they are reported together with validation problems.
    """
    filename = str(path)
    try:
        with Path(path).open("rb") as src:
            raw = src.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise ConfigError(f"{filename}:1: larger than {MAX_YAML_BYTES} bytes, refused")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{filename}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{filename}: not a UTF-8 text file") from exc
    return parse_yaml(text, filename, expand_env=expand_env)


def parse_yaml(text: str, filename: str, *, expand_env: bool = True) -> YamlDocument:
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{filename}:1: larger than {MAX_YAML_BYTES} bytes, refused")
    _check_depth(text, filename)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        walker = _Walker(loader, filename, expand_env)
        data = None if node is None else walker.walk(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{filename}:{line}: malformed YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: malformed YAML: {exc}") from exc
    finally:
        loader.dispose()
    walker.lines[()] = 1
    return YamlDocument(filename, data, walker.lines, walker.problems)


def _check_depth(text: str, filename: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH from the event stream (PyYAML's parser is iterative)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else 1
                    raise ConfigError(f"{filename}:{line}: nested more than {MAX_DEPTH} levels deep, refused")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return  # malformed: the real parse reports it with its line


class _Walker:
    """Turns composed YAML nodes into plain values, noting each key's line and env problems."""

    def __init__(self, loader: yaml.SafeLoader, filename: str, expand_env: bool) -> None:
        self.loader = loader
        self.filename = filename
        self.expand_env = expand_env
        self.lines: dict[tuple[str, ...], int] = {}
        self.problems: list[str] = []
        self.values = 0

    def walk(self, node: yaml.Node, path: tuple[str, ...]) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:  # only aliases get a small file here: each one re-walks its node
            line = node.start_mark.line + 1
            raise ConfigError(
                f"{self.filename}:{line}: more than {MAX_VALUES} values once aliases are expanded, refused"
            )
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*path, str(i))) for i, item in enumerate(node.value)]
        value = self.loader.construct_object(node, deep=True)
        if self.expand_env and isinstance(value, str) and "${" in value:
            return _expand(value, path, node.start_mark.line + 1, self.problems, self.filename)
        return value

    def _mapping(self, node: yaml.MappingNode, path: tuple[str, ...]) -> dict[str, Any]:
        self.loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(self.loader.construct_object(key_node, deep=True))
            child = (*path, key)
            line = key_node.start_mark.line + 1
            if key in out:
                self.problems.append(f"{self.filename}:{line}: {'.'.join(child)}: duplicate key")
            self.lines[child] = line
            out[key] = self.walk(value_node, child)
        return out


def _expand(value: str, path: tuple[str, ...], line: int, problems: list[str], filename: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(f"{filename}:{line}: {'.'.join(path)}: environment variable {name} is not set")
        return ""

    return _ENV.sub(sub, value)
