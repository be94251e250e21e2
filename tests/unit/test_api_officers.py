"""Pure parts of the officers' API: keys, rate limits, case transitions, before/after statistics."""

from __future__ import annotations

import itertools
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import keys
from api.auth import KeyCache
from api.officers.cases import TRANSITIONS, TransitionError, check_transition
from api.ratelimit import FixedWindowLimiter
from api.verification import compare, passes


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- keys ---------------------------------------------------------------------------------------


def test_a_key_is_made_of_its_id_and_a_secret_and_only_its_hash_is_kept() -> None:
    new = keys.generate("Officer Li", "admin")
    assert keys.key_id_of(new.key) == new.key_id
    assert new.key.startswith(f"ep_{new.key_id}_")
    stored = keys.StoredKey(
        new.key_id, new.name, "admin", keys.hash_key(new.key), datetime.now(UTC), None
    )
    assert new.key not in stored.secret_hash
    assert keys.matches(new.key, stored)
    assert not keys.matches(new.key[:-1] + ("A" if new.key[-1] != "A" else "B"), stored)


def test_keys_are_unique() -> None:
    assert len({keys.generate("x", "read").key for _ in range(200)}) == 200


@pytest.mark.parametrize(
    "text", ["", "ep_", "ep_1234567_abc", "Bearer x", "ep_zzzzzzzz_" + "a" * 43]
)
def test_malformed_keys_have_no_id(text: str) -> None:
    assert keys.key_id_of(text) is None


@pytest.mark.parametrize(("name", "role"), [("x", "root"), ("  ", "read"), ("x" * 201, "admin")])
def test_bad_key_requests_are_refused(name: str, role: str) -> None:
    with pytest.raises(keys.ApiKeyError):
        keys.generate(name, role)


def test_the_key_cache_reloads_after_its_time() -> None:
    clock = Clock()
    loads: list[str] = []

    def load(key_id: str) -> keys.StoredKey | None:
        loads.append(key_id)
        return None

    cache = KeyCache(ttl_s=30, clock=clock)
    cache.get("a", load)
    cache.get("a", load)
    assert loads == ["a"]
    clock.now += 31
    cache.get("a", load)
    assert loads == ["a", "a"]


# --- rate limits --------------------------------------------------------------------------------


def test_a_fixed_window_allows_limit_then_refuses_until_it_ends() -> None:
    clock = Clock(120.0)
    limiter = FixedWindowLimiter(60, clock)
    decisions = [limiter.hit("k", 3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].reset_s == 60
    assert (b"retry-after", b"60") in decisions[-1].headers()
    assert limiter.hit("other", 3).allowed  # identities are counted apart
    clock.now = 179.5
    assert limiter.hit("k", 3).reset_s == 1
    clock.now = 180.0
    assert limiter.hit("k", 3).allowed


@given(
    st.lists(st.floats(min_value=0, max_value=600), min_size=1, max_size=200), st.integers(1, 20)
)
def test_never_more_than_limit_in_any_window(times: list[float], limit: int) -> None:
    clock = Clock()
    limiter = FixedWindowLimiter(60, clock)
    allowed_per_window: dict[int, int] = {}
    for t in sorted(times):
        clock.now = t
        decision = limiter.hit("k", limit)
        assert 0 <= decision.remaining <= limit - 1 or not decision.allowed
        assert 1 <= decision.reset_s <= 60
        if decision.allowed:
            allowed_per_window[int(t // 60)] = allowed_per_window.get(int(t // 60), 0) + 1
    assert all(n <= limit for n in allowed_per_window.values())


# --- case transitions ---------------------------------------------------------------------------


def test_the_main_path_of_a_case_is_allowed() -> None:
    path = ["open", "dispatched", "treated", "verified", "closed"]
    for current, wanted in itertools.pairwise(path):
        check_transition(current, wanted)


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        ("open", "treated"),
        ("open", "verified"),
        ("closed", "dispatched"),
        ("dispatched", "verified"),
    ],
)
def test_skipping_steps_is_refused(current: str, wanted: str) -> None:
    with pytest.raises(TransitionError, match=f"a {current} case cannot become {wanted}"):
        check_transition(current, wanted)


def test_every_status_can_be_closed_or_reopened() -> None:
    for status, allowed in TRANSITIONS.items():
        assert "closed" in allowed or status == "closed"
    assert TRANSITIONS["closed"] == {"open"}


# --- before/after -------------------------------------------------------------------------------


def test_compare_is_exact_for_small_samples() -> None:
    # Three before, three after, clearly separated: of the 20 relabellings, four give a
    # difference of medians of 9 in size (the observed one, its mirror, and the two that swap
    # only the innermost values, 3 and 10, which the medians do not see): p = 4/20.
    result = compare([10.0, 11.0, 12.0], [1.0, 2.0, 3.0])
    assert result.exact
    assert result.permutations == 20
    assert result.change == -9.0
    assert result.p_value == pytest.approx(0.2)


def test_compare_finds_a_clear_drop_in_larger_samples() -> None:
    before = [40.0 + (i % 7) for i in range(20)]
    after = [20.0 + (i % 5) for i in range(20)]
    result = compare(before, after, permutations=2000)
    assert not result.exact
    assert result.p_value < 0.01
    assert result.median_before == statistics.median(before)
    assert result.change == statistics.median(after) - statistics.median(before)


def test_compare_is_reproducible() -> None:
    before = [float(i % 13) for i in range(25)]
    after = [float(i % 11) for i in range(25)]
    assert compare(before, after, permutations=500) == compare(before, after, permutations=500)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-100, 100), min_size=2, max_size=8),
    st.lists(st.floats(-100, 100), min_size=2, max_size=8),
    st.floats(-50, 50),
)
def test_shifting_both_sides_changes_nothing_but_the_medians(
    before: list[float], after: list[float], shift: float
) -> None:
    a = compare(before, after, permutations=200)
    b = compare([v + shift for v in before], [v + shift for v in after], permutations=200)
    assert 0 < a.p_value <= 1
    assert b.change == pytest.approx(a.change, abs=1e-6)
    assert b.p_value == pytest.approx(a.p_value, abs=0.05)


def test_passes_split_on_vehicle_and_gap_and_use_the_energy_mean_for_noise() -> None:
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    s = timedelta(seconds=10)
    rows = [
        ("a", t0, 60.0),
        ("a", t0 + s, 70.0),
        ("a", t0 + 30 * s, 50.0),  # a 290 s gap: a new pass
        ("b", t0 + s, 40.0),
    ]
    found = passes(rows, pass_gap_s=120)
    assert [(p.vehicle, p.mean) for p in found] == [("a", 65.0), ("a", 50.0), ("b", 40.0)]
    noisy = passes(rows[:2], pass_gap_s=120, energy=True)
    assert noisy[0].mean == pytest.approx(67.4, abs=0.01)
