"""Remote commands of the sampler: ``set-sampling`` (change policies at run time) and ``snapshot``.

Changes are validated by the same ``_check`` rules as the config file, then applied by swapping
a policy's frozen config (one attribute assignment, safe against the publish thread reading it).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any

from agent.config.observers import QuotaConfig, SamplingPolicyConfig
from agent.errors import AgentError, CommandError
from agent.publish import CommandRouter
from agent.sampling.policies import POLICY_NAMES, describe
from agent.sampling.quota import Quota
from agent.sampling.sampler import Sampler

SNAPSHOT_WAIT_MAX_S = 60.0
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


def register_sampling_commands(router: CommandRouter, sampler: Sampler) -> None:
    router.register("set-sampling", lambda args: set_sampling(sampler, args), SET_SAMPLING_SCHEMA)
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


def set_sampling(sampler: Sampler, args: dict[str, Any]) -> dict[str, Any]:
    """With ``policy``: change that policy. Without: ``enabled`` and the quota keys apply to the
    sampler as a whole. Nothing changes when any value is invalid."""
    quota_changes = {k: args[k] for k in _QUOTA_KEYS if k in args}
    changes = {k: v for k, v in args.items() if k in _POLICY_KEYS}
    if "labels" in changes and not all(isinstance(x, str) for x in changes["labels"]):
        raise CommandError("labels: expected a list of strings")
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


def _quota(current: QuotaConfig, changes: dict[str, int]) -> QuotaConfig | None:
    """The changed quota (0 or more; a negative value removes that limit), or None when unchanged."""
    if not changes:
        return None
    values = {k: (None if v < 0 else v) for k, v in changes.items()}
    return dataclasses.replace(current, **values)


def _validate(cfg: SamplingPolicyConfig, where: str) -> None:
    problems = cfg._check() + cfg.quota._check()
    if problems:
        raise CommandError("; ".join(f"{where}: {key}: {problem}" for key, problem in problems))


def snapshot(sampler: Sampler, args: dict[str, Any]) -> dict[str, Any]:
    """Sample the next inspected frame whatever the policies say; reply with its sample id."""
    timeout = min(float(args.get("timeout_s", 5.0)), SNAPSHOT_WAIT_MAX_S)
    future = sampler.request_snapshot()
    try:
        return {"id": future.result(timeout=timeout)}
    except concurrent.futures.TimeoutError as exc:
        future.cancel()
        raise CommandError(f"no frame inspected within {timeout:.1f} s") from exc
    except AgentError as exc:
        raise CommandError(str(exc)) from exc
