"""Label files as the tools write them: Teachable Machine's ``0 Name`` lines, or one name per line."""

from __future__ import annotations

import re
from pathlib import Path

from agent.errors import ModelError
from agent.model.importers.base import Labels

_INDEXED = re.compile(r"^(\d+)\s+(\S.*)$")


def read_label_file(path: Path) -> tuple[tuple[str, ...], bool]:
    """(labels in output order, whether the file is indexed ``0 Name`` lines as Teachable Machine writes).

    An indexed file must number its lines 0, 1, 2… in order: a gap or a shuffle would
    silently pair scores with the wrong names.
    """
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read label file {path}: {exc}") from exc
    if not lines:
        raise ModelError(f"label file {path} is empty")
    matches = [_INDEXED.match(ln) for ln in lines]
    if all(matches):
        numbers = [int(m.group(1)) for m in matches if m]
        if numbers != list(range(len(lines))):
            raise ModelError(f"label file {path}: indexed lines must count 0, 1, 2… in order, got {numbers}")
        return tuple(m.group(2).strip() for m in matches if m), True
    return tuple(lines), False


def parse_labels(text: str) -> Labels:
    """``--labels``: a label file, or comma-separated names."""
    path = Path(text)
    if path.is_file():
        names, indexed = read_label_file(path)
        return Labels(names, indexed, path.name)
    if "," not in text and (path.suffix or "/" in text):
        raise ModelError(f"--labels {text}: no such file (give a label file or comma-separated names)")
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise ModelError("--labels is empty")
    return Labels(names, False, "--labels")


def labels_beside(model: Path) -> Labels | None:
    """``labels.txt`` next to the model file, as Teachable Machine and Edge Impulse ship it."""
    path = model.parent / "labels.txt"
    if not path.is_file():
        return None
    names, indexed = read_label_file(path)
    return Labels(names, indexed, f"{path.name} beside the model")


def check_count(labels: tuple[str, ...], outputs: int, source: str) -> None:
    if len(labels) != outputs:
        raise ModelError(
            f"{source} names {len(labels)} label(s) but the model outputs {outputs} score(s) "
            "(the label file must list one name per output, in order)"
        )
    if len(set(labels)) != len(labels):
        raise ModelError(f"{source} lists a label twice")
