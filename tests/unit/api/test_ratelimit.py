"""Who counts where: verified keys, addresses without a key, failed authentications."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from api.ratelimit import FixedWindowLimiter, RateLimits


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limits(clock: Clock, *, key: int = 5, anonymous: int = 3, failed: int = 2) -> RateLimits:
    return RateLimits(
        limiter=FixedWindowLimiter(60, clock),
        key_per_minute=key,
        anonymous_per_minute=anonymous,
        failed_auth_per_minute=failed,
    )


def test_failed_authentications_touch_no_key_budget() -> None:
    found = limits(Clock())
    for _ in range(100):
        found.failed_auth("203.0.113.9")
    decision = found.key("3f9a2c1d")
    assert decision is not None
    assert decision.allowed
    assert decision.remaining == 4


def test_an_address_is_blocked_after_its_failures_until_the_window_ends() -> None:
    clock = Clock(120.0)
    found = limits(clock, failed=2)
    assert found.auth_blocked("a") is None
    found.failed_auth("a")
    assert found.auth_blocked("a") is None
    found.failed_auth("a")
    blocked = found.auth_blocked("a")
    assert blocked is not None
    assert not blocked.allowed
    assert blocked.reset_s == 60
    assert found.auth_blocked("b") is None  # addresses apart
    assert found.anonymous("a") is not None  # and apart from its anonymous budget
    clock.now = 180.0
    assert found.auth_blocked("a") is None


def test_zero_switches_each_limit_off() -> None:
    found = limits(Clock(), key=0, anonymous=0, failed=0)
    for _ in range(10):
        found.failed_auth("a")
    assert found.auth_blocked("a") is None
    assert found.key("k") is None
    assert found.anonymous("a") is None


@given(st.lists(st.sampled_from(["hit", "peek"]), max_size=40), st.integers(1, 10))
def test_looking_counts_nothing(steps: list[str], limit: int) -> None:
    limiter = FixedWindowLimiter(60, Clock())
    hits = 0
    for step in steps:
        if step == "hit":
            hits += 1
            limiter.hit("k", limit)
        refused = limiter.exhausted("k", limit)
        assert (refused is not None) == (hits >= limit)
