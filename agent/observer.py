"""The frame observer contract: a part that sees every inspected frame (sampler, drift, swap watch).

Like picamera2's ``Output``, the base class is a valid observer that does nothing, so a part
overrides only the hooks it needs. It sits below the pipeline so that observers (sampling,
drift) implement it without importing the pipeline that calls them; the error boundary around
every call is :class:`agent.pipeline.observers.Observers`.
"""

from __future__ import annotations

from typing import Any

from agent.capture.base import Frame
from agent.model.result import InferenceResult
from agent.protocol.payloads import ModelSummary, ResultPayload


class FrameObserver:
    """Sees inspected frames; every hook is a valid do-nothing default.

    ``observe`` and ``failed`` run on the publish thread, so they must be cheap;
    ``tick`` runs on the main loop for slower work (drift's window tests).
    """

    name = "observer"

    def observe(self, frame: Frame, result: InferenceResult, payload: ResultPayload) -> None:
        """A frame was inspected and its result published."""

    def failed(self, frame: Frame, model: ModelSummary, error: str) -> None:
        """Inference or postprocessing failed on a frame (no result was published)."""

    def tick(self) -> None:
        """Main-loop work, a few times a second."""

    def close(self, timeout: float) -> None:
        """Finish queued work (before the outbox is drained at shutdown)."""

    def health(self) -> dict[str, Any] | None:
        """This observer's section of the health report, if it has one."""
        return None
