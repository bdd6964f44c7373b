"""Typed manifests for postprocessor tests, built by the same strict parser a package goes through."""

from __future__ import annotations

from typing import Any

from agent.config.typed import build
from agent.model.manifest import Manifest


def manifest(task: str, labels: tuple[str, ...], **overrides: Any) -> Manifest:
    """A minimal valid manifest for ``task``; keyword sections replace the defaults."""
    doc: dict[str, Any] = {
        "name": task[0],
        "version": "1",
        "task": task,
        "file": "m.onnx",
        "sha256": "0" * 64,
        "budget_ms": 10,
        "labels": list(labels),
        "input": {"width": 64, "height": 64},
    }
    doc.update(overrides)
    built, problems = build(Manifest, doc, "manifest.yaml", lambda _p: 1)
    assert built is not None, problems
    return built
