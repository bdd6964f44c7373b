"""``model compare``: a champion and a challenger on the same frames, paired, and the gate.

Both models see exactly the same frames, so their differences are paired: the accuracy
difference gets a bootstrap interval over frames (resampling the same frames for both),
and McNemar's exact test on the frames only one of them gets right says whether the
difference is more than chance. Per line, the same paired difference shows a challenger
that is better on average but worse where it matters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import ConfigError
from agent.metrics import Outcome
from agent.model.evaldata import EvalSet
from agent.model.evaluate import Run, describe_package, figures, run_package
from agent.model.gate import Gate, check_gate
from agent.runtimes.base import RuntimeKind

BOOTSTRAP = 2000
_CHUNK = 250


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs against 1/2."""
    n = only_first + only_second
    if n == 0:
        return 1.0
    k = min(only_first, only_second)
    log_half = n * math.log(0.5)
    tail = sum(
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half)
        for i in range(k + 1)
    )
    return min(1.0, 2.0 * tail)


def paired_bootstrap(first: np.ndarray, second: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of mean(second) - mean(first), resampling frames (pairs) together."""
    n = len(first)
    if n == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, BOOTSTRAP, _CHUNK):
        idx = rng.integers(n, size=(min(_CHUNK, BOOTSTRAP - start), n))
        diffs.append(second[idx].mean(axis=1) - first[idx].mean(axis=1))
    lo, hi = np.percentile(np.concatenate(diffs), [2.5, 97.5])
    return round(float(lo), 4), round(float(hi), 4)


def paired(first: Sequence[Outcome], second: Sequence[Outcome]) -> dict[str, Any]:
    """Paired accuracy and defect-recall differences (second minus first) with intervals and McNemar."""
    a = np.array([o.correct for o in first], np.float64)
    b = np.array([o.correct for o in second], np.float64)
    only_a, only_b = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    out: dict[str, Any] = {
        "frames": len(a),
        "accuracy_diff": round(float(b.mean() - a.mean()), 4) if len(a) else None,
        "accuracy_diff_ci95": list(paired_bootstrap(a, b)),
        "mcnemar": {
            "champion_only": only_a,
            "challenger_only": only_b,
            "p_value": round(mcnemar_exact(only_a, only_b), 6),
        },
    }
    defects = np.array([o.truth_defect for o in first], bool)
    if defects.any():
        fa = np.array([o.flagged for o in first], np.float64)[defects]
        fb = np.array([o.flagged for o in second], np.float64)[defects]
        out["defect_recall_diff"] = round(float(fb.mean() - fa.mean()), 4)
        out["defect_recall_diff_ci95"] = list(paired_bootstrap(fa, fb, seed=1))
    return out


def per_line(champion: Run, challenger: Run) -> dict[str, Any]:
    """The paired accuracy difference on each line the export's metadata names."""
    lines: dict[str, list[int]] = {}
    for i, group in enumerate(champion.groups):
        lines.setdefault(group["line"], []).append(i)
    return {
        line: paired([champion.outcomes[i] for i in idx], [challenger.outcomes[i] for i in idx])
        for line, idx in sorted(lines.items())
    }


def check_label_sets(
    champion: Sequence[str], challenger: Sequence[str], label_map: Mapping[str, str]
) -> None:
    """Refuse two models whose labels differ, unless the map makes the challenger's match."""
    mapped = {label_map.get(k, k) for k in challenger}
    if mapped != set(champion):
        missing, extra = sorted(set(champion) - mapped), sorted(mapped - set(champion))
        hint = "" if label_map else "; map them with --label-map CHALLENGER=CHAMPION"
        raise ConfigError(
            f"the models have different label sets (challenger lacks: {', '.join(missing) or '-'}; "
            f"challenger adds: {', '.join(extra) or '-'}){hint}"
        )


def compare(
    champion: Path,
    challenger: Path,
    data: EvalSet,
    gate: Gate,
    *,
    runtime: RuntimeKind | None = None,
    label_map: Mapping[str, str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The ``model compare`` report; ``passed`` is True only when every gate criterion is met."""
    first, second = describe_package(champion), describe_package(challenger)
    mapping = dict(label_map or {})
    check_label_sets(first["labels"], second["labels"], mapping)
    a = run_package(champion, data, runtime, progress=progress)
    b = run_package(challenger, data, runtime, label_map=mapping, progress=progress)
    if len(a.outcomes) != len(b.outcomes):  # same files, same reader: cannot happen unless the data changed
        raise ConfigError(f"--data: {data.root} changed while the models ran; run compare again")
    labels = first["labels"]
    fig_a, fig_b = figures(a, labels), figures(b, labels)
    criteria = check_gate(gate, fig_a, fig_b)
    failed = [c.as_dict() | {"message": c.describe()} for c in criteria if not c.passed]
    return {
        "champion": first | {"runtime": a.runtime},
        "challenger": second | {"runtime": b.runtime},
        "label_map": mapping,
        "data": {
            "root": str(data.root),
            "layout": data.layout,
            "frames": len(data.items),
            "evaluated": len(a.outcomes),
            "skipped": len(a.skipped),
            "skipped_files": a.skipped,
            "empty_classes": list(data.empty_classes),
        },
        "champion_figures": fig_a,
        "challenger_figures": fig_b,
        "paired": paired(a.outcomes, b.outcomes),
        "per_line": per_line(a, b) if "line" in fig_a["by"] else {},
        "gate": {"criteria": [c.as_dict() for c in criteria], "failed": failed},
        "passed": not failed,
    }
