"""A model package on disk: a directory with ``manifest.yaml``, the model file(s), labels, golden images.

Opening a package proves it is whole before anything runs it: every path stays
inside the package directory, and the model file matches the manifest's sha256.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.errors import ModelError
from agent.model.manifest import Manifest, read_manifest
from agent.runtimes.base import RuntimeKind

MANIFEST = "manifest.yaml"


@dataclass(frozen=True, slots=True)
class ModelPackage:
    root: Path  # resolved package directory (a `current` symlink is followed once, here)
    manifest: Manifest
    runtime: RuntimeKind
    model_file: Path
    sha256: str
    labels: tuple[str, ...]

    @property
    def defect_labels(self) -> frozenset[str]:
        if self.manifest.defect_labels is not None:
            return frozenset(self.manifest.defect_labels)
        return frozenset(self.labels[1:])

    @property
    def ident(self) -> str:
        return f"{self.manifest.name}/{self.manifest.version}"


def inside(root: Path, relative: str, what: str) -> Path:
    """``root/relative`` resolved; refuses anything leaving ``root`` (``../``, absolute paths, links out)."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ModelError(f"{what} {relative!r} points outside the package directory {root}")
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def choose_runtime(manifest: Manifest, wanted: Literal["auto", "tflite", "onnx"]) -> RuntimeKind:
    """``auto`` prefers TFLite when the package carries it; asking for one it lacks is an error."""
    carried = manifest.files()
    if wanted == "auto":
        return "tflite" if "tflite" in carried else next(iter(carried))
    if wanted not in carried:
        raise ModelError(
            f"model {manifest.name} {manifest.version} has no {wanted} file "
            f"(it carries: {', '.join(carried)})"
        )
    return wanted


def open_package(
    path: str | Path, runtime: Literal["auto", "tflite", "onnx"] = "auto", *, verify: bool = True
) -> ModelPackage:
    """Read and check a package directory; raise :class:`ModelError` with one clear reason."""
    root = Path(path).resolve()
    if not root.is_dir():
        raise ModelError(
            f"model package {path} is not a directory"
            if root.exists()
            else f"model package {path} does not exist"
        )
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"model package {path} has no {MANIFEST}")
    manifest = read_manifest(manifest_path)
    kind = choose_runtime(manifest, runtime)
    relative, expected = manifest.files()[kind]
    model_file = inside(root, relative, "model file")
    if not model_file.is_file():
        raise ModelError(f"model file {relative} is missing from {root}")
    if verify:
        actual = file_sha256(model_file)
        if actual != expected.lower():
            raise ModelError(
                f"sha256 mismatch for {relative}: manifest says {expected[:12]}…, file is {actual[:12]}… "
                "(corrupt or tampered package)"
            )
    return ModelPackage(root, manifest, kind, model_file, expected.lower(), _labels(root, manifest))


def _labels(root: Path, manifest: Manifest) -> tuple[str, ...]:
    if manifest.labels is not None:
        labels = tuple(manifest.labels)
    else:
        assert manifest.labels_file is not None
        path = inside(root, manifest.labels_file, "labels_file")
        try:
            labels = tuple(
                line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
            )
        except OSError as exc:
            raise ModelError(
                f"cannot read labels_file {manifest.labels_file}: {exc.strerror or exc}"
            ) from exc
    if not labels:
        raise ModelError(f"model {manifest.name} has no labels")
    if len(set(labels)) != len(labels):
        raise ModelError(f"model {manifest.name} has duplicate labels")
    unknown = set(manifest.defect_labels or ()) - set(labels)
    if unknown:
        raise ModelError(f"defect_labels not in labels: {', '.join(sorted(unknown))}")
    return labels
