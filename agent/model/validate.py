"""Prove a model package before it runs: integrity, signature, fit to the model, golden results, latency.

Each step is a named :class:`Check`; a failed step stops only the steps that depend
on it, so one run lists every problem with its reason. Latency is measured on this
machine over preprocess + invoke + postprocess of a camera-sized frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.config.schema import ModelConfig
from agent.errors import AgentError
from agent.model.golden import check_golden, golden_images, read_image
from agent.model.loaded import LoadedModel
from agent.model.manifest import Manifest, read_manifest
from agent.model.package import MANIFEST, choose_runtime, inside, open_package
from agent.model.signing import CHECKSUMS, signature_kind, verify_checksums, verify_signature
from agent.runtimes import open_runtime
from agent.runtimes.base import RuntimeKind

SUPPORTED_INPUT_DTYPES = (np.float32, np.float16, np.uint8, np.int8)
FRAME_SHAPE = (480, 640, 3)  # a camera-sized frame, so latency includes a real resize


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(slots=True)
class ValidationReport:
    checks: list[Check] = field(default_factory=list)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # per runtime: p50, p99
    model: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, step: Callable[[], str]) -> bool:
        """Run one step; an AgentError becomes a failed check with its one-line reason."""
        try:
            detail = step()
        except AgentError as exc:
            self.checks.append(Check(name, False, str(exc)))
            return False
        self.checks.append(Check(name, True, detail))
        return True

    def fail(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, False, detail))

    def to_json(self) -> dict[str, Any]:
        first = next(iter(self.latency_ms.values()), {})
        return {
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "latency_ms": first,
            "latency_ms_by_runtime": self.latency_ms,
            "model": self.model,
        }


def validate_package(
    root: Path,
    *,
    runtime: str | None = None,
    runs: int = 100,
    cfg: ModelConfig | None = None,
    trusted_keys: list[str] | None = None,
    require_signature: bool = False,
) -> ValidationReport:
    """Validate every runtime the package carries (or only ``runtime``: auto, tflite or onnx)."""
    report = ValidationReport()
    cfg = cfg or ModelConfig(path=str(root))
    manifest_box: list[Manifest] = []
    if not report.add("manifest", lambda: _manifest(root, manifest_box)):
        return report
    manifest = manifest_box[0]
    _integrity(report, root, trusted_keys or [], require_signature)
    kinds = list(manifest.files())
    if runtime is not None:
        try:
            kinds = [choose_runtime(manifest, runtime)]  # type: ignore[arg-type]
        except AgentError as exc:
            report.fail("runtime", str(exc))
            return report
    for kind in kinds:
        _validate_runtime(report, root, kind, cfg, runs)
    report.model = {
        "name": manifest.name,
        "version": manifest.version,
        "task": manifest.task,
        "runtimes": kinds,
        "budget_ms": manifest.budget_ms,
        "files": {k: {"file": f, "sha256": s} for k, (f, s) in manifest.files().items()},
    }
    return report


def _manifest(root: Path, box: list[Manifest]) -> str:
    if not root.is_dir():
        raise AgentError(f"{root} is not a package directory")
    manifest = read_manifest(root / MANIFEST)
    box.append(manifest)
    for key, value in (("labels_file", manifest.labels_file), ("golden", manifest.golden)):
        if value is not None:
            inside(root.resolve(), value, key)
    return f"{manifest.name} {manifest.version} ({manifest.task}, runtimes: {', '.join(manifest.files())})"


def _integrity(report: ValidationReport, root: Path, keys: list[str], required: bool) -> None:
    kind = signature_kind(root)
    signed = kind is not None
    if required or (signed and keys):
        report.add("signature", lambda: _signed(root, keys, kind))
    elif (root / CHECKSUMS).is_file():
        note = "; signature present but not verified (no trusted key given)" if signed else ""
        report.add("checksums", lambda: f"{verify_checksums(root)} files match {CHECKSUMS}{note}")


def _signed(root: Path, keys: list[str], kind: str | None) -> str:
    detail = f"{kind} signature by trusted key {verify_signature(root, keys)}"
    if kind == "legacy ed25519":
        detail += " (older format, accepted for one more release: re-sign with `model sign` or minisign)"
    return detail


def _validate_runtime(
    report: ValidationReport, root: Path, kind: RuntimeKind, cfg: ModelConfig, runs: int
) -> None:
    box: list[LoadedModel] = []
    if not report.add(f"{kind}: load", lambda: _load(root, kind, cfg, box)):
        return
    model = box[0]
    try:
        if not report.add(f"{kind}: tensors", lambda: _tensors(model)):
            return
        if not report.add(f"{kind}: run", lambda: _smoke(model)):
            return
        report.add(f"{kind}: golden", lambda: _golden(model, kind))
        _latency(report, model, kind, runs)
    finally:
        model.close()


def _load(root: Path, kind: RuntimeKind, cfg: ModelConfig, box: list[LoadedModel]) -> str:
    package = open_package(root, kind)
    runtime = open_runtime(kind, package.model_file, cfg)
    try:
        box.append(LoadedModel(package, runtime))
    except AgentError:
        runtime.close()
        raise
    return f"{package.model_file.name} sha256 {package.sha256[:12]}… loaded"


def _tensors(model: LoadedModel) -> str:
    spec = model.runtime.inputs[0]
    if spec.dtype.type not in SUPPORTED_INPUT_DTYPES:
        raise AgentError(f"input dtype {spec.dtype} is not supported (float32, float16, uint8, int8)")
    manifest = model.package.manifest
    outs = ", ".join(f"{o.shape} {o.dtype}" for o in model.runtime.outputs)
    return (
        f"input {spec.shape} {spec.dtype} matches {manifest.input.layout} {manifest.input.width}x"
        f"{manifest.input.height} {manifest.input.color}; outputs {outs}; {len(model.package.labels)} labels"
    )


def _smoke(model: LoadedModel) -> str:
    result = model.infer(np.full(FRAME_SHAPE, 128, np.uint8))
    return f"grey frame -> {result.label} {result.score:.3f}"


def _golden(model: LoadedModel, kind: str) -> str:
    manifest = model.package.manifest
    if manifest.golden is None:
        return "skipped: the package has no golden images"
    report = check_golden(model, kind, inside(model.package.root, manifest.golden, "golden"))
    if not report.ok:
        problems = report.failures or ["no golden image compared"]
        raise AgentError(
            f"{len(problems)} golden failure(s) (tolerance {report.tolerance}): {'; '.join(problems)}"
        )
    return (
        f"{report.compared} images match (label equal, scores within tolerance {report.tolerance}; "
        f"max diff {report.max_diff:.4f})"
    )


def _latency(report: ValidationReport, model: LoadedModel, kind: str, runs: int) -> None:
    frame = _timing_frame(model)
    model.warm_up(3)
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        model.infer(frame)
        times.append((time.perf_counter() - start) * 1000.0)
    p50, p99 = (float(v) for v in np.percentile(times, [50, 99]))
    report.latency_ms[kind] = {"p50": round(p50, 3), "p99": round(p99, 3)}
    budget = model.package.manifest.budget_ms
    detail = f"p50 {p50:.2f} ms, p99 {p99:.2f} ms over {len(times)} runs; budget {budget} ms"
    if p99 > budget:
        report.fail(f"{kind}: latency", f"{detail}: p99 is over budget")
    else:
        report.checks.append(Check(f"{kind}: latency", True, detail))


def _timing_frame(model: LoadedModel) -> np.ndarray:
    """The first golden image (the real content), else a camera-sized noise frame."""
    manifest = model.package.manifest
    if manifest.golden is not None:
        directory = inside(model.package.root, manifest.golden, "golden")
        if directory.is_dir():
            try:
                return read_image(golden_images(directory)[0])
            except AgentError:
                pass
    return np.random.default_rng(0).integers(0, 256, FRAME_SHAPE, dtype=np.uint8)
