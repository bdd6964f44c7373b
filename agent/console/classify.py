"""``POST /api/classify``: one uploaded image through the loaded model, answered as a result payload.

The work runs on the pipeline's inference thread between two frames
(:meth:`agent.pipeline.runner.Pipeline.between_frames`): the runtime is never called from two
threads, no frame of the line is dropped, and the answer carries exactly the fields and schema
of a result on ``.../result`` (it is built by the same :func:`result_payload`).
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from agent.capture.base import Frame
from agent.config.schema import AgentConfig
from agent.model.loaded import LoadedModel
from agent.protocol.payloads import ResultPayload, result_payload

_SEQ = itertools.count(1)


def classify(cfg: AgentConfig, model: LoadedModel, image: np.ndarray, queued_at: float) -> ResultPayload:
    """Preprocess, run and postprocess ``image`` (BGR) on ``model``, timing each step like the pipeline."""
    t0 = time.monotonic()
    frame = Frame(image, seq=next(_SEQ), ts_ms=int(time.time() * 1000), mono=queued_at, ref="upload")
    tensor, transform = model.preprocess(image)
    t1 = time.monotonic()
    outputs = model.run(tensor)
    t2 = time.monotonic()
    result = model.postprocess(outputs, transform)
    t3 = time.monotonic()
    budget = cfg.inference.budget_ms or model.package.manifest.budget_ms
    latency = (0.0, (t0 - queued_at) * 1000, (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000,
               (t3 - queued_at) * 1000)  # fmt: skip
    return result_payload(
        device=cfg.device, frame=frame, result=result, model=model.summary, latency=latency, budget_ms=budget
    )
