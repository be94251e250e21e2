"""Pure parts of the officers' API: keys, rate limits, case transitions, before/after statistics."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import h3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import keys
from api.auth import KeyCache
from api.officers import cases
from api.officers.cases import TRANSITIONS, TransitionError, check_transition
from api.ratelimit import FixedWindowLimiter
from hotspots.verification import cells_at, verdict_of


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


def test_cells_are_brought_to_the_analysis_resolution() -> None:
    cell = h3.latlng_to_cell(39.9, 116.46, 10)
    assert cells_at((cell,), 10) == [cell]
    assert cells_at((cell,), 11) == sorted(h3.cell_to_children(cell, 11))
    assert cells_at((cell,), 9) == [h3.cell_to_parent(cell, 9)]


def test_a_verdict_needs_a_small_p_value_and_an_interval_clear_of_zero() -> None:
    assert verdict_of(-30.0, -40.0, -20.0, 0.001, 0.05) == "decreased"
    assert verdict_of(30.0, 20.0, 40.0, 0.001, 0.05) == "increased"
    assert verdict_of(-30.0, -40.0, 5.0, 0.001, 0.05) == "no-significant-change"
    assert verdict_of(-30.0, -40.0, -20.0, 0.2, 0.05) == "no-significant-change"


@given(st.sampled_from(["image/jpeg", "image/png", "image/webp", "image/gif", "text/plain"]),
       st.binary(max_size=64))  # fmt: skip
def test_a_photo_is_taken_only_when_its_bytes_are_what_its_type_says(
    media_type: str, content: bytes
) -> None:
    signatures = {
        "image/jpeg": content.startswith(b"\xff\xd8\xff"),
        "image/png": content.startswith(b"\x89PNG\r\n\x1a\n"),
        "image/webp": content.startswith(b"RIFF") and content[8:12] == b"WEBP",
    }
    try:
        cases.check_photo(media_type, content)
    except cases.AttachmentError:
        assert not signatures.get(media_type, False)
    else:
        assert signatures[media_type]


@given(st.binary(min_size=8, max_size=64))
def test_real_signatures_followed_by_anything_are_taken(tail: bytes) -> None:
    cases.check_photo("image/png", b"\x89PNG\r\n\x1a\n" + tail)
    cases.check_photo("image/jpeg", b"\xff\xd8\xff" + tail)
    cases.check_photo("image/webp", b"RIFF" + tail[:4] + b"WEBP" + tail)
