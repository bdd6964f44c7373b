"""``inspection-agent status --config PATH``: the local agent's latest health, for a technician.

Reads ``{state.dir}/health.json`` (written by the running agent every
``health.interval_s``) and prints it readably, or as JSON with ``--json``. Exit 0
when the agent is running and its report is fresh, 1 when it is not running, its
report is stale, or there is none.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from agent.config import load_config
from agent.health import statefile

STALE_INTERVALS = 3  # a report older than this many intervals (and 5 s) means the agent is gone


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("status", help="show the local agent's latest health")
    p.add_argument("--config", required=True, help="the device's YAML config")
    p.add_argument("--json", action="store_true", help="print the health report as JSON")
    p.set_defaults(func=status)


def status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    path = cfg.state_dir / statefile.FILENAME
    doc = statefile.read(path)
    if doc is None:
        sys.stdout.write(f"NOT RUNNING: no health report at {path} (the agent has not run here yet)\n")
        return 1
    problem = _problem(doc, STALE_INTERVALS * cfg.health.interval_s)
    if args.json:
        sys.stdout.write(json.dumps({**doc, "problem": problem}, indent=2) + "\n")
    else:
        sys.stdout.write(("" if problem is None else problem + "\n") + render(doc))
    return 0 if problem is None else 1


def _problem(doc: dict[str, Any], max_age_s: float) -> str | None:
    """Why this report does not describe a running agent, or None when it does."""
    age = time.time() - float(doc.get("ts", 0)) / 1000.0
    if doc.get("state") == "stopped":
        return f"NOT RUNNING: the agent stopped {_ago(age)} ({doc.get('reason', 'no reason given')})"
    pid = doc.get("pid")
    if isinstance(pid, int) and not _alive(pid):
        return f"NOT RUNNING: process {pid} is gone; last report {_ago(age)}"
    if age > max(max_age_s, 5.0):
        return f"STALE: last report {_ago(age)}; the agent is not reporting (hung or not running)"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user (the service account)
        return True
    return True


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def render(doc: dict[str, Any]) -> str:
    """The report as aligned ``key: value`` lines."""
    model = doc.get("model") or {}
    fps, c, out, sys_ = (
        doc.get("fps", {}),
        doc.get("counters", {}),
        doc.get("outbox", {}),
        doc.get("system", {}),
    )
    lines = [
        ("state", f"{doc.get('state')}" + (f" ({doc['degraded']})" if doc.get("degraded") else "")),
        ("device", f"{doc.get('device')} ({doc.get('site')}/{doc.get('line')}), pid {doc.get('pid')}"),
        ("uptime", f"{doc.get('uptime_s', 0):.0f} s"),
        ("camera", str(doc.get("camera"))),
        ("model", f"{model.get('name')} {model.get('version')} ({str(model.get('sha256'))[:12]}…)"),
        ("fps", f"captured {fps.get('captured')}, inspected {fps.get('inspected')}"),
        ("counters", ", ".join(f"{k} {v}" for k, v in c.items())),
        ("latency ms", _latency(doc.get("latency_ms") or {})),
        ("outbox", _outbox(out)),
        ("drift", _drift(doc.get("drift"))),
        ("system", _system(sys_)),
    ]
    if doc.get("sampler") is not None:
        lines.append(("sampler", json.dumps(doc["sampler"], separators=(", ", ": "))))
    return "".join(f"{k:>11}: {v}\n" for k, v in lines)


def _latency(latency: dict[str, dict[str, float]]) -> str:
    total = latency.get("total")
    if not total:
        return "no frames in the last interval"
    return f"total p50 {total['p50']} / p95 {total['p95']} / p99 {total['p99']}; infer p95 " + str(
        latency.get("infer", {}).get("p95")
    )


def _outbox(out: dict[str, Any]) -> str:
    error = out.get("last_error")
    link = "connected" if out.get("connected") else f"DISCONNECTED ({error})"
    if out.get("connected") and error and str(error).startswith("session taken over"):
        link += f" but {error}"  # two devices fighting over one client id are connected half the time
    dropped = sum((out.get("dropped") or {}).values())
    return f"{link}; depth {out.get('depth')} ({out.get('bytes')} bytes), dropped {dropped}"


def _drift(drift: dict[str, Any] | None) -> str:
    if not drift or not drift.get("enabled"):
        return "off"
    # "ok" with drifting windows read as a contradiction: the alarm needs raise_after drifting
    # windows in a row, so a lone one is shown as not (yet) an alarm.
    windows, drifting = drift.get("windows") or 0, drift.get("drifting_windows") or 0
    quiet = "no alarm (it needs drifting windows in a row)" if drifting else "ok"
    state = "ALARM" if drift.get("active") else quiet
    reasons = (drift.get("last") or {}).get("reasons") or []
    counts = f"{drifting} of {windows} window{'s' if windows != 1 else ''} drifted"
    return f"{state}; {counts}" + (f"; last: {', '.join(reasons)}" if reasons else "")


def _system(s: dict[str, Any]) -> str:
    rss = s.get("rss_bytes")
    temp = s.get("cpu_temp_c")
    disk = s.get("disk_free_bytes")
    busiest = ", ".join(f"{name} {pct}" for name, pct in list((s.get("threads_percent") or {}).items())[:5])
    return (
        (f"cpu {s.get('cpu_percent')} %, rss {rss / 2**20:.0f} MiB" if rss is not None else "rss ?")
        + f", cpu temp {temp if temp is not None else 'n/a'} °C, disk free "
        + (f"{disk / 2**30:.1f} GiB" if disk is not None else "n/a")
        + (f"; busiest threads (% of a core): {busiest}" if busiest else "")
    )
