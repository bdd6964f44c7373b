"""Token buckets: a burst up to the quota, then one token per period/N."""

from __future__ import annotations

from agent.config.observers import QuotaConfig
from agent.sampling.quota import Quota, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(3, 60.0, clock)
    for _ in range(3):
        assert bucket.available()
        bucket.take()
    assert not bucket.available()
    clock.now += 19.0
    assert not bucket.available()
    clock.now += 1.5  # 20 s = one token at 3/min
    assert bucket.available()


def test_quota_needs_a_token_in_every_period() -> None:
    clock = Clock()
    quota = Quota(QuotaConfig(per_minute=10, per_hour=2), clock)
    quota.take()
    quota.take()
    assert not quota.available()  # the hour is spent though the minute is not


def test_quota_without_limits_is_always_available() -> None:
    quota = Quota(QuotaConfig(), Clock())
    for _ in range(1000):
        quota.take()
    assert quota.available()
