"""Remote commands of the sampler: ``set-sampling`` (change policies at run time) and ``snapshot``.

Changes are validated by the same ``_check`` rules as the config file, then applied by swapping
a policy's frozen config (one attribute assignment, safe against the publish thread reading it).
A command may tighten or loosen a quota within ``[0, MAX_QUOTA]`` but never lift it: "no limit"
is only for whoever writes the device config. Labels must be the running model's.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from agent.config.observers import QuotaConfig, SamplingPolicyConfig
from agent.errors import AgentError, CommandError
from agent.publish import CommandRouter
from agent.sampling.policies import POLICY_NAMES, describe
from agent.sampling.quota import MAX_QUOTA, Quota
from agent.sampling.sampler import Sampler

SNAPSHOT_WAIT_MAX_S = 60.0
MAX_LABELS = 256
Labels = Callable[[], Sequence[str]]  # the running model's labels
_QUOTA_KEYS = ("per_minute", "per_hour", "per_day")
_POLICY_KEYS: dict[str, type | tuple[type, ...]] = {
    "enabled": bool,
    "rate": float,
    "min_score": float,
    "max_score": float,
    "margin": float,
    "threshold": float,
    "delta": float,
    "labels": list,
}
SET_SAMPLING_SCHEMA = {
    "required": {},
    "optional": {"policy": str, **_POLICY_KEYS, **dict.fromkeys(_QUOTA_KEYS, int)},
}
SNAPSHOT_SCHEMA = {"required": {}, "optional": {"timeout_s": float}}


def register_sampling_commands(router: CommandRouter, sampler: Sampler, labels: Labels | None = None) -> None:
    """``labels``: the running model's labels, which ``set-sampling`` checks named labels against."""
    router.register("set-sampling", lambda args: set_sampling(sampler, args, labels), SET_SAMPLING_SCHEMA)
    router.register("snapshot", lambda args: snapshot(sampler, args), SNAPSHOT_SCHEMA)


def settings(sampler: Sampler) -> dict[str, Any]:
    """What set-sampling replies: the live settings of the sampler and of every policy."""
    quota = sampler.quota.config
    return {
        "enabled": sampler.enabled,
        "quota": {k: getattr(quota, k) for k in _QUOTA_KEYS},
        "policies": {name: describe(p) for name, p in sampler.policies.items()},
        "stats": sampler.stats(),
    }


def set_sampling(sampler: Sampler, args: dict[str, Any], labels: Labels | None = None) -> dict[str, Any]:
    """With ``policy``: change that policy. Without: ``enabled`` and the quota keys apply to the
    sampler as a whole. Nothing changes when any value is invalid."""
    quota_changes = {k: args[k] for k in _QUOTA_KEYS if k in args}
    _check_quotas(quota_changes)
    changes = {k: v for k, v in args.items() if k in _POLICY_KEYS}
    if "labels" in changes:
        _check_labels(changes["labels"], labels)
    name = args.get("policy")
    if name is None:
        extra = sorted(set(changes) - {"enabled"})
        if extra:
            raise CommandError(f"{', '.join(extra)}: need a policy ({', '.join(POLICY_NAMES)})")
        new_quota = _quota(sampler.quota.config, quota_changes)
        if new_quota is not None:
            sampler.quota = Quota(new_quota)
        if "enabled" in changes:
            sampler.enabled = changes["enabled"]
        return settings(sampler)
    if name not in sampler.policies:
        raise CommandError(f"policy: unknown {name!r} (known: {', '.join(POLICY_NAMES)})")
    policy = sampler.policies[name]
    new_quota = _quota(policy.config.quota, quota_changes)
    cfg = dataclasses.replace(policy.config, **changes, quota=new_quota or policy.config.quota)
    _validate(cfg, f"policy {name}")
    if new_quota is not None:
        policy.quota = Quota(new_quota)
    policy.config = cfg
    return settings(sampler)


def _check_quotas(changes: dict[str, int]) -> None:
    """Quotas from a command are bounded: 0 stops a policy, nothing lifts a limit (config only)."""
    for key, value in changes.items():
        if not 0 <= value <= MAX_QUOTA:
            raise CommandError(
                f"{key}: must be between 0 and {MAX_QUOTA} (only the device config can remove a limit)"
            )


def _check_labels(value: list[Any], labels: Labels | None) -> None:
    if len(value) > MAX_LABELS or not all(isinstance(x, str) for x in value):
        raise CommandError(f"labels: expected a list of at most {MAX_LABELS} strings")
    known = tuple(labels()) if labels is not None else None
    unknown = sorted(set(value) - set(known)) if known is not None else []
    if unknown:
        shown = ", ".join(repr(x[:40]) for x in unknown[:5])
        raise CommandError(f"labels: {shown} not among the model's labels ({', '.join(known or ())})")


def _quota(current: QuotaConfig, changes: dict[str, int]) -> QuotaConfig | None:
    """The changed quota (already checked by :func:`_check_quotas`), or None when unchanged."""
    if not changes:
        return None
    return dataclasses.replace(current, **changes)


def _validate(cfg: SamplingPolicyConfig, where: str) -> None:
    problems = cfg._check() + cfg.quota._check()
    if problems:
        raise CommandError("; ".join(f"{where}: {key}: {problem}" for key, problem in problems))


def snapshot(sampler: Sampler, args: dict[str, Any]) -> dict[str, Any]:
    """Sample the next inspected frame whatever the policies say; reply with its sample id.

    A request that times out is withdrawn (not cancelled under the publish thread's feet: the
    frame that comes later must not find a dead future), so nothing is sampled for it."""
    timeout = float(args.get("timeout_s", 5.0))
    if not 0.0 <= timeout <= SNAPSHOT_WAIT_MAX_S:
        raise CommandError(f"timeout_s: must be between 0 and {SNAPSHOT_WAIT_MAX_S:.0f}")
    future = sampler.request_snapshot()
    try:
        return {"id": future.result(timeout=timeout)}
    except concurrent.futures.TimeoutError as exc:
        if sampler.withdraw_snapshot(future):
            raise CommandError(f"no frame inspected within {timeout:.1f} s") from exc
        return {"id": future.result()}  # a frame took it just now: its outcome is already set
    except AgentError as exc:
        raise CommandError(str(exc)) from exc
