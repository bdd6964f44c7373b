"""One benchmark variant in this process; prints one JSON line with its figures and peak RSS.

``python -m agent.bench.worker CONFIG VARIANT FRAMES [FPS]``
"""

from __future__ import annotations

import json
import resource
import sys

from agent.bench.e2e import E2E
from agent.bench.variants import OVERLOAD, VARIANTS
from agent.config import load_config
from agent.log import configure


def main(argv: list[str]) -> int:
    config, variant, frames = argv[0], argv[1], int(argv[2])
    cfg = load_config(config)
    configure("warning", "json")
    if variant in OVERLOAD:
        figures = OVERLOAD[variant](cfg, frames, float(argv[3]))
    else:
        figures = {**VARIANTS, **E2E}[variant](cfg, frames)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    sys.stdout.write(json.dumps({"variant": variant, **figures}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
