"""The review app's latency against the size of the collector index.

    python scripts/bench_review.py [--sizes 1000,10000,100000] [--requests 100]

For each size, a fresh index holds that many samples (three lines, two model versions, spread
uncertainty), the real review app runs on uvicorn on loopback, and one logged-in reviewer asks:

- queue: ``GET /review`` (the page, with its first queue page and the count left) and
  ``GET /api/samples?state=unreviewed&order=uncertainty`` (plain and filtered by line);
- next image: ``GET /api/samples/{id}/image`` and ``GET /api/samples/{id}`` for the next
  samples in queue order: what the page preloads while the reviewer looks at the current one;
- vote: ``POST /api/samples/{id}/votes``.

Baseline in the same run: ``GET /static/web/web.css`` (the server's floor: routing, headers,
one small file). Targets: queue p95 <= 100 ms, next image p95 <= 50 ms at 100,000 samples.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.collector.config import load_collector_config  # noqa: E402
from agent.collector.index import Index, SampleRow  # noqa: E402
from agent.collector.review.web import ReviewServer  # noqa: E402
from agent.web.users import add_user  # noqa: E402
from tests.support.webclient import WebClient  # noqa: E402

LABELS = ["ok", "scratch", "dent", "hole"]
LINES = ["line-1", "line-2", "line-3"]


def populate(root: Path, n: int) -> None:
    """n sample rows (images are written later, only for the ones the benchmark reads)."""
    index = Index(root / "index.db")
    rng = np.random.default_rng(n)
    batch: list[SampleRow] = []
    ts0 = 1767225600000
    for i in range(n):
        raw = rng.dirichlet(np.ones(len(LABELS)) * 0.6)
        scores = {label: round(float(v), 4) for label, v in zip(LABELS, raw, strict=True)}
        predicted = max(scores, key=lambda k: scores[k])
        line, version = LINES[i % 3], "1.0.0" if i % 5 else "1.1.0"
        sid = f"{i:026d}"
        meta = {"id": sid, "ts": ts0 + i * 1000, "device": f"cam-{i % 12:02d}", "site": "plant-a",
                "line": line, "frame": i, "model": {"name": "demo-defects", "version": version},
                "label": predicted, "score": scores[predicted], "scores": scores,
                "reasons": ["low_confidence"],
                "image": {"width": 640, "height": 480, "bytes": 1}}  # fmt: skip
        path = f"demo-defects/{version}/unlabeled/{predicted}/{sid}.jpg"
        batch.append(SampleRow(sid, meta["ts"], meta["device"], "plant-a", line, "demo-defects", version,
                               predicted, scores[predicted], path, 1, ["low_confidence"], meta))  # fmt: skip
        if len(batch) == 5000:
            index.record(batch, [], [])
            batch = []
    index.record(batch, [], [])
    index.close()


def write_images(root: Path, items: list[dict[str, object]]) -> None:
    """A realistic 640x480 JPEG (~40 KB) for each sample the benchmark will read."""
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (5, 5), 0)
    data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    index = Index(root / "index.db")
    for item in items:
        (path,) = index.query("SELECT path FROM samples WHERE id = ?", [item["id"]])[0]
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    index.close()


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18] * 1000 if len(samples) > 1 else samples[0] * 1000


def timed(call: Callable[[], object], n: int) -> list[float]:
    call()  # warm
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def check(reply: object) -> object:
    status = getattr(reply, "status", 0)
    if status not in (200, 201):
        raise SystemExit(f"bench_review: unexpected HTTP {status}: {getattr(reply, 'text', '')[:200]}")
    return reply


def measure(size: int, requests: int, work: Path) -> dict[str, float]:
    root = work / f"n{size}"
    root.mkdir()
    config = root / "collector.yaml"
    config.write_text(f"storage: {{root: {root}}}\nweb: {{listen: '127.0.0.1:0', users_file: users.yaml}}\n")
    started = time.perf_counter()
    populate(root, size)
    fill_s = time.perf_counter() - started
    add_user(root / "users.yaml", "bench", "reviewer", "bench-password", ("reviewer", "admin"))
    cfg = load_collector_config(config)
    server = ReviewServer(cfg).start()
    try:
        client = WebClient(server.url)
        if client.login("bench", "bench-password").status != 303:
            raise SystemExit("bench_review: cannot log in")
        items = client.get(f"/api/samples?limit={requests + 10}").json()["items"]
        write_images(root, items)
        nxt, details, votes = iter(items), iter(items), iter(items[: requests // 2 + 1])

        def p95_of(path: Callable[[], str], n: int = requests) -> float:
            return p95(timed(lambda: check(client.get(path())), n))

        def vote() -> object:
            return check(client.post(f"/api/samples/{next(votes)['id']}/votes", {"label": "ok"}))

        result = {
            "size": size,
            "fill_s": round(fill_s, 1),
            "baseline_ms": p95_of(lambda: "/static/web/web.css"),
            "queue_page_ms": p95_of(lambda: "/review"),
            "queue_api_ms": p95_of(lambda: "/api/samples?state=unreviewed"),
            "queue_line_ms": p95_of(lambda: "/api/samples?line=line-2&version=1.1.0"),
            "next_image_ms": p95_of(lambda: f"/api/samples/{next(nxt)['id']}/image"),
            "next_detail_ms": p95_of(lambda: f"/api/samples/{next(details)['id']}"),
            "vote_ms": p95(timed(vote, requests // 2)),
        }
    finally:
        server.stop()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000", help="index sizes, comma-separated")
    p.add_argument("--requests", type=int, default=100, help="requests per measurement")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-review-"))
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            rows.append(measure(size, args.requests, work))
            if not args.json:
                r = rows[-1]
                print(f"{r['size']:>7} samples: queue page p95 {r['queue_page_ms']:6.1f} ms, queue API "
                      f"{r['queue_api_ms']:5.1f} ms (filtered {r['queue_line_ms']:5.1f}), next image "
                      f"{r['next_image_ms']:5.1f} ms + detail {r['next_detail_ms']:5.1f} ms, vote "
                      f"{r['vote_ms']:5.1f} ms; baseline {r['baseline_ms']:4.1f} ms "
                      f"(queue page x{r['queue_page_ms'] / r['baseline_ms']:.1f})", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    big = rows[-1]
    ok = big["queue_page_ms"] <= 100 and big["next_image_ms"] <= 50
    verdict = "met" if ok else "MISSED"
    print(f"targets at {big['size']} samples (queue <= 100 ms, next image <= 50 ms): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
