"""Labeled frames for ``model evaluate``/``compare``: a ``dataset export`` folder or a plain image folder.

Layouts, detected in this order:

- ``DIR/dataset.csv`` (``dataset export --format csv``): ``id, split, label, path`` rows;
- ``DIR/{train,val,test}/{label}/*`` (``dataset export --format imagefolder``): the ``--split``
  folder (default ``test``);
- ``DIR/{label}/*``: every image.

Per-frame metadata (``site``, ``line``, ``device``) comes from ``DIR/metadata.csv`` (written by
``dataset export``; columns ``id`` or ``path`` plus any of those), or from the same columns in
``dataset.csv``. Frames without it are grouped under ``(unknown)``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SPLITS = ("train", "val", "test")
META_KEYS = ("site", "line", "device")


@dataclass(frozen=True, slots=True)
class Item:
    """One labeled image and what is known about where it came from."""

    path: Path
    label: str
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EvalSet:
    root: Path
    layout: str
    items: tuple[Item, ...]
    classes: tuple[str, ...]  # every class folder / label seen, with or without images
    empty_classes: tuple[str, ...]


def read_eval_set(root: Path, split: str = "test", label_map: Mapping[str, str] | None = None) -> EvalSet:
    """Read the labeled frames under ``root``; raise ConfigError with one line if there are none."""
    if not root.is_dir():
        raise ConfigError(f"--data: {root} is not a directory")
    meta = _metadata(root)
    if (root / "dataset.csv").is_file():
        layout, items, classes = "csv", *_from_csv(root, split, meta)
    elif any((root / s).is_dir() for s in SPLITS):
        if split != "all" and not (root / split).is_dir():
            raise ConfigError(f"--data: {root} has no {split!r} split (it has: {_splits(root)})")
        layout = "imagefolder"
        parts = [root / s for s in SPLITS if (root / s).is_dir()] if split == "all" else [root / split]
        items, classes = _from_folders(parts, meta)
    else:
        layout, (items, classes) = "folder", _from_folders([root], meta)
    mapping = dict(label_map or {})
    items = [Item(i.path, mapping.get(i.label, i.label), i.meta) for i in items]
    classes = sorted({mapping.get(c, c) for c in classes})
    if not items:
        raise ConfigError(
            f"--data: no images under {root} (expected {{label}}/*.png|jpg or a dataset export)"
        )
    have = {i.label for i in items}
    return EvalSet(root, layout, tuple(items), tuple(classes), tuple(c for c in classes if c not in have))


def check_labels(data: EvalSet, model_labels: Sequence[str], what: str) -> None:
    """Refuse a data set with a class the model cannot predict: its frames could never be right."""
    unknown = [c for c in data.classes if c not in model_labels]
    if unknown:
        raise ConfigError(
            f"--data: class {', '.join(map(repr, unknown))} is not a label of {what} "
            f"({', '.join(model_labels)}); rename it or map it with --label-map DATA=MODEL"
        )


def parse_label_map(pairs: Sequence[str]) -> dict[str, str]:
    """``["dent=hole", …]`` -> ``{"dent": "hole"}``; a malformed pair is a ConfigError."""
    out = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src or not dst:
            raise ConfigError(f"--label-map: {pair!r} is not FROM=TO")
        out[src] = dst
    return out


def _splits(root: Path) -> str:
    return ", ".join(s for s in SPLITS if (root / s).is_dir())


def _metadata(root: Path) -> dict[str, dict[str, str]]:
    """id or relative path -> {site, line, device} from metadata.csv or dataset.csv, if present."""
    out: dict[str, dict[str, str]] = {}
    for name in ("dataset.csv", "metadata.csv"):
        if not (root / name).is_file():
            continue
        with (root / name).open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                meta = {k: row[k] for k in META_KEYS if row.get(k)}
                for key in (row.get("id"), row.get("path")):
                    if key and meta:
                        out.setdefault(key, {}).update(meta)
    return out


def _lookup(meta: Mapping[str, dict[str, str]], root: Path, path: Path) -> dict[str, str]:
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    return meta.get(rel) or meta.get(path.stem) or {}


def _from_folders(parts: Sequence[Path], meta: Mapping[str, dict[str, str]]) -> tuple[list[Item], list[str]]:
    items, classes = [], set()
    for part in parts:
        for d in sorted(p for p in part.iterdir() if p.is_dir()):
            classes.add(d.name)
            for f in sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
                items.append(Item(f, d.name, _lookup(meta, part.parent if part.name in SPLITS else part, f)))
    return items, sorted(classes)


def _from_csv(root: Path, split: str, meta: Mapping[str, dict[str, str]]) -> tuple[list[Item], list[str]]:
    items, classes = [], set()
    with (root / "dataset.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows and not {"label", "path"} <= set(rows[0]):
        raise ConfigError(f"--data: {root / 'dataset.csv'} needs label and path columns")
    splits = {r.get("split", "") for r in rows}
    use_all = split == "all" or split not in splits
    for row in rows:
        classes.add(row["label"])
        if use_all or row.get("split") == split:
            path = root / row["path"]
            items.append(Item(path, row["label"], _lookup(meta, root, path)))
    return items, sorted(classes)
