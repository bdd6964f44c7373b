"""Turn a parsed YAML tree into frozen dataclasses, reporting every problem at once.

A tiny, strict validator driven by type hints: unknown keys are rejected,
missing keys and wrong types are reported as ``file:line: key.path: what``.
Supported hints: str, int, float, bool, Secret, Literal[...], X | None,
list[X], tuple[X, ...], dict[str, X] and nested dataclasses. Fields with a
default are optional. A dataclass may define ``_check(self) -> list[tuple[str, str]]``
returning (key, problem) pairs for cross-field rules.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from agent.config.secret import Secret

T = TypeVar("T")
LineOf = Callable[[tuple[str, ...]], int]


class _Collector:
    def __init__(self, filename: str, line_of: LineOf) -> None:
        self.filename = filename
        self.line_of = line_of
        self.problems: list[str] = []

    def add(self, path: tuple[str, ...], message: str) -> None:
        key = ".".join(path) if path else "(top level)"
        self.problems.append(f"{self.filename}:{self.line_of(path)}: {key}: {message}")


_MISSING = object()


def build(cls: type[T], data: Any, filename: str, line_of: LineOf) -> tuple[T | None, list[str]]:
    """Build ``cls`` from ``data``; return (instance or None, problems)."""
    col = _Collector(filename, line_of)
    value = _convert(cls, data, (), col)
    if col.problems:
        return None, col.problems
    return typing.cast(T, value), []


def _type_name(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", Secret: "a string"}
    if tp in names:
        return names[tp]
    origin = get_origin(tp)
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    return str(tp)


def _convert(tp: Any, value: Any, path: tuple[str, ...], col: _Collector) -> Any:  # noqa: PLR0911
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(_pick_union_arm(args, value), value, path, col)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            col.add(path, f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(typing.cast(type, tp), value, path, col)
    if origin in (list, tuple):
        if not isinstance(value, list):
            col.add(path, f"must be a list, got {_describe(value)}")
            return None
        item_tp = get_args(tp)[0]
        items = [_convert(item_tp, v, (*path, str(i)), col) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            col.add(path, f"must be a mapping, got {_describe(value)}")
            return None
        val_tp = get_args(tp)[1]
        return {str(k): _convert(val_tp, v, (*path, str(k)), col) for k, v in value.items()}
    return _convert_scalar(tp, value, path, col)


def _pick_union_arm(args: list[Any], value: Any) -> Any:
    """For ``str | dict[str, str]`` and the like: the arm whose shape matches the value."""
    for arm in args:
        origin = get_origin(arm)
        if isinstance(value, Mapping) and (origin is dict or dataclasses.is_dataclass(arm)):
            return arm
        if isinstance(value, list) and origin in (list, tuple):
            return arm
    scalars = [
        a for a in args if get_origin(a) not in (dict, list, tuple) and not dataclasses.is_dataclass(a)
    ]
    return scalars[0] if scalars else args[0]


def _as_bool(value: Any) -> tuple[bool, Any]:
    return isinstance(value, bool), value


def _as_int(value: Any) -> tuple[bool, Any]:
    return isinstance(value, int) and not isinstance(value, bool), value


def _as_float(value: Any) -> tuple[bool, Any]:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok, float(value) if ok else value


def _as_str(value: Any) -> tuple[bool, Any]:
    ok = isinstance(value, str | int | float) and not isinstance(value, bool)
    return ok, str(value) if ok else value


def _as_secret(value: Any) -> tuple[bool, Any]:
    if isinstance(value, Secret):
        return True, value
    return isinstance(value, str), Secret(str(value))


_SCALARS: dict[Any, Callable[[Any], tuple[bool, Any]]] = {
    bool: _as_bool,
    int: _as_int,
    float: _as_float,
    str: _as_str,
    Secret: _as_secret,
    Any: lambda value: (True, value),
}


def _convert_scalar(tp: Any, value: Any, path: tuple[str, ...], col: _Collector) -> Any:
    try:
        convert = _SCALARS[tp]
    except KeyError:
        raise TypeError(f"unsupported config type {tp!r} at {'.'.join(path)}") from None
    ok, converted = convert(value)
    if not ok:
        got = _kind(value) if tp is Secret else _describe(value)
        col.add(path, f"must be {_type_name(tp)}, got {got}")
    return converted


def _convert_dataclass(cls: type, value: Any, path: tuple[str, ...], col: _Collector) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        col.add(path, f"must be a mapping, got {_describe(value)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in value:
        if key not in fields:
            known = ", ".join(sorted(fields))
            col.add((*path, str(key)), f"unknown key (known keys: {known})")
    kwargs: dict[str, Any] = {}
    failed: set[str] = set()
    for name, f in fields.items():
        before = len(col.problems)
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], (*path, name), col)
        elif _required(f):
            col.add((*path, name), f"missing required key ({_type_name(hints[name])})")
        if len(col.problems) > before:
            failed.add(name)
            kwargs.pop(name, None)
    if any(_required(fields[name]) for name in failed):
        return None  # no instance to run the section's own checks on
    obj = cls(**kwargs)  # a field that failed takes its default, so the other fields still get checked
    _run_checks(obj, path, failed, col)
    return None if failed else obj


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _run_checks(obj: Any, path: tuple[str, ...], failed: set[str], col: _Collector) -> None:
    """The section's ``_check`` rules, except those about a field already reported as mistyped."""
    check = getattr(obj, "_check", None)
    if check is None:
        return
    for key, problem in check():
        if key.split(".", 1)[0] not in failed:
            col.add((*path, key) if key else path, problem)


def _kind(value: Any) -> str:
    """What a secret field got, without its value: a wrongly typed password is still a password."""
    name = "a mapping" if isinstance(value, Mapping) else type(value).__name__
    return f"{name} (value not shown: secret)"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
