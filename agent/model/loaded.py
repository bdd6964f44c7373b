"""A model ready to run: package + runtime + the pre/postprocessing chosen for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from agent.config.schema import ModelConfig
from agent.model.package import ModelPackage, open_package
from agent.model.postprocess import Postprocessor, make_postprocessor
from agent.model.preprocess import Preprocessor, Transform
from agent.model.result import InferenceResult
from agent.runtimes import Runtime, open_runtime

if TYPE_CHECKING:
    from agent.protocol.payloads import ModelSummary


class LoadedModel:
    """Runs frames through one model. Not thread-safe: one inference thread owns it."""

    def __init__(self, package: ModelPackage, runtime: Runtime) -> None:
        self.package = package
        self.runtime = runtime
        self.preprocess = Preprocessor(package.manifest.input, runtime.inputs[0])
        runtime.set_input_shape(self.preprocess.shape)
        self.postprocess: Postprocessor = make_postprocessor(
            package.manifest.for_runtime(runtime.name), package.labels, runtime.outputs, package.defect_labels
        )
        # The `model` object of every result payload, built once.
        self.summary: ModelSummary = {
            "name": package.manifest.name,
            "version": package.manifest.version,
            "sha256": package.sha256,
            "runtime": runtime.name,
        }

    @property
    def name(self) -> str:
        return self.package.manifest.name

    @property
    def version(self) -> str:
        return self.package.manifest.version

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.runtime.run(tensor)

    def infer(self, image: np.ndarray) -> InferenceResult:
        """Preprocess, run and postprocess one BGR frame (tools and tests; the pipeline times each step)."""
        tensor, transform = self.preprocess(image)
        return self.postprocess(self.runtime.run(tensor), transform)

    def warm_up(self, runs: int) -> None:
        """Run a few blank frames so the first real frame does not pay for lazy allocations."""
        spec = self.package.manifest.input
        blank = np.zeros((spec.height, spec.width, 3), np.uint8)
        tensor, transform = self.preprocess(blank)
        outputs = [self.runtime.run(tensor) for _ in range(runs)]
        if outputs:  # postprocess once too: a model answering NaN is refused at start, not on the line
            self.postprocess(outputs[-1], transform)

    def describe(self) -> dict[str, Any]:
        return {**self.summary, "task": self.package.manifest.task}

    def close(self) -> None:
        self.runtime.close()


def load_model(path: str, cfg: ModelConfig, *, warmup: bool = True) -> LoadedModel:
    """Open, verify and load a package; raise ModelError (or RuntimeMissingError) with one reason."""
    package = open_package(path, cfg.runtime)
    if cfg.require_signature:
        from agent.model.signing import verify_signature

        verify_signature(package.root, cfg.trusted_keys)
    model = LoadedModel(package, open_runtime(package.runtime, package.model_file, cfg))
    if warmup:
        model.warm_up(cfg.warmup_runs)
    return model


__all__ = ["InferenceResult", "LoadedModel", "Transform", "load_model"]
