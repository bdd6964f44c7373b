"""Small real model packages for the store and flashing tests (a manifest, a model file, its sha256)."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import yaml


def make_package(
    root: Path, name: str = "demo", version: str = "1.0.0", payload: bytes | None = None
) -> Path:
    """A package directory ``root/{name}-{version}`` whose manifest checksum matches its model file."""
    pkg = root / f"{name}-{version}"
    (pkg / "golden").mkdir(parents=True)
    model = payload if payload is not None else f"model {name} {version} ".encode() * 4096
    (pkg / "model.tflite").write_bytes(model)
    (pkg / "golden" / "expected.json").write_text('{"ok.png": "ok"}\n')
    manifest = {
        "name": name,
        "version": version,
        "task": "classification",
        "file": "model.tflite",
        "sha256": hashlib.sha256(model).hexdigest(),
        "labels": ["ok", "scratch"],
        "input": {"width": 8, "height": 8},
        "budget_ms": 50,
    }
    (pkg / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return pkg


def make_tarball(pkg: Path) -> Path:
    out = pkg.parent / f"{pkg.name}.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        tar.add(pkg, arcname=pkg.name)
    return out


def truncate_model(pkg: Path) -> None:
    model = pkg / "model.tflite"
    model.write_bytes(model.read_bytes()[:100])


def break_manifest_checksum(pkg: Path) -> None:
    path = pkg / "manifest.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest["sha256"] = "0" * 64
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
