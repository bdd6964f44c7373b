"""Build a model package from model file(s) and a short description (unpacking is :mod:`agent.model.archive`).

A package is written to a hidden sibling directory and renamed into place only once
it is complete (manifest parsed back with the strict validator, every runtime loaded,
golden ``expected.json`` computed, ``CHECKSUMS`` written), so a failed pack leaves
nothing half-made and never overwrites an existing package.
"""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from agent.config.loader import read_yaml
from agent.config.schema import ModelConfig
from agent.errors import ConfigError, ModelError
from agent.model.golden import DEFAULT_TOLERANCE, compute_expected, golden_images, write_expected
from agent.model.loaded import LoadedModel
from agent.model.package import MANIFEST, file_sha256, inside, open_package
from agent.model.signing import write_checksums
from agent.runtimes import open_runtime
from agent.runtimes.base import SUFFIX_RUNTIME, RuntimeKind

GOLDEN_DIR = "golden"
LABELS_FILE = "labels.txt"


@dataclass(frozen=True, slots=True)
class PackResult:
    root: Path
    runtimes: tuple[RuntimeKind, ...]
    golden_images: int
    tarball: Path | None


def pack(
    manifest: Mapping[str, Any],
    models: list[Path],
    out: Path,
    *,
    labels_file: Path | None = None,
    golden: Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    tar: bool = False,
) -> PackResult:
    """Write a complete package at ``out`` (which must not exist or be empty).

    ``manifest`` holds every manifest key except ``file``/``sha256``/``golden``
    (filled in here); ``labels_file`` replaces ``labels`` when given.
    """
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"{out} already exists and is not empty; choose another --out or remove it")
    work = out.parent / f".{out.name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        doc = _stage(dict(manifest), models, work, labels_file, golden)
        (work / MANIFEST).write_text(
            yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        kinds = _check_and_golden(work, golden is not None, tolerance)
        write_checksums(work)
        if out.exists():
            out.rmdir()
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tarball = make_tarball(out) if tar else None
    count = len(golden_images(out / GOLDEN_DIR)) if golden is not None else 0
    return PackResult(out, kinds, count, tarball)


def _stage(
    doc: dict[str, Any], models: list[Path], work: Path, labels_file: Path | None, golden: Path | None
) -> dict[str, Any]:
    files: dict[str, str] = {}
    for model in models:
        kind = SUFFIX_RUNTIME.get(model.suffix.lower())
        if kind is None:
            raise ModelError(f"{model.name}: a model file must end in .tflite or .onnx")
        if kind in files:
            raise ModelError(f"two {kind} model files given ({files[kind]}, {model.name}); one per runtime")
        if not model.is_file():
            raise ModelError(f"model file {model} does not exist")
        shutil.copyfile(model, work / model.name)
        files[kind] = model.name
    if not files:
        raise ModelError("no model file given")
    sums = {k: file_sha256(work / name) for k, name in files.items()}
    single = len(files) == 1
    doc["file"] = next(iter(files.values())) if single else files
    doc["sha256"] = next(iter(sums.values())) if single else sums
    doc.pop("runtime", None)
    if labels_file is not None:
        shutil.copyfile(labels_file, work / LABELS_FILE)
        doc.pop("labels", None)
        doc["labels_file"] = LABELS_FILE
    doc.pop("golden", None)
    if golden is not None:
        (work / GOLDEN_DIR).mkdir()
        for image in golden_images(golden):
            shutil.copyfile(image, work / GOLDEN_DIR / image.name)
        doc["golden"] = GOLDEN_DIR
    return doc


def _check_and_golden(root: Path, with_golden: bool, tolerance: float) -> tuple[RuntimeKind, ...]:
    """Open and load every runtime (proving the manifest fits the model), then record golden results."""
    packages = {kind: open_package(root, kind) for kind in open_package(root).manifest.files()}
    cfg = ModelConfig(path=str(root))
    models = {kind: LoadedModel(p, open_runtime(kind, p.model_file, cfg)) for kind, p in packages.items()}
    try:
        if with_golden:
            images = golden_images(root / GOLDEN_DIR)
            write_expected(root / GOLDEN_DIR, compute_expected(models, images, tolerance))
    finally:
        for model in models.values():
            model.close()
    return tuple(models)


def manifest_for_repack(path: Path) -> tuple[dict[str, Any], list[Path], Path | None, Path | None]:
    """An existing manifest's keys and the files it names: (manifest, models, labels file, golden dir)."""
    try:
        doc = read_yaml(path).data
    except ConfigError as exc:
        raise ModelError(str(exc)) from exc
    if not isinstance(doc, dict):
        raise ModelError(f"{path}:1: manifest must be a mapping")
    root = path.resolve().parent
    names = doc.pop("file", None)
    doc.pop("sha256", None)
    listed = list(names.values()) if isinstance(names, dict) else [names] if isinstance(names, str) else []
    models = [inside(root, str(n), "model file") for n in listed]
    labels = doc.pop("labels_file", None)
    golden = doc.get("golden")
    return (
        doc,
        models,
        inside(root, str(labels), "labels_file") if labels else None,
        inside(root, str(golden), "golden") if golden else None,
    )


def make_tarball(root: Path) -> Path:
    """``<root>.tar.gz`` holding the package directory under its own name, owner and times normalised."""
    target = root.with_name(root.name + ".tar.gz")

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    with tarfile.open(target, "w:gz") as archive:
        for path in [root, *sorted(root.rglob("*"))]:
            archive.add(
                path,
                arcname=str(PurePosixPath(root.name, *path.relative_to(root).parts)),
                recursive=False,
                filter=clean,
            )
    return target
