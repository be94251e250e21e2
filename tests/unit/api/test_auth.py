"""Keys remembered without a lookup, and actors shown without key ids to non-admins."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from api import keys
from api.auth import ANONYMOUS, Caller, KeyCache, shown_actor

ADMIN = Caller("3f9a2c1d", "Officer Wang", "admin")
READER = Caller("0badcafe", "Integrator", "read")


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def stored(new: keys.NewKey, *, revoked: bool = False) -> keys.StoredKey:
    now = datetime.now(UTC)
    return keys.StoredKey(
        new.key_id, new.name, new.role, keys.hash_key(new.key), now, now if revoked else None
    )


def test_only_a_recently_verified_key_itself_is_known() -> None:
    clock = Clock()
    cache = KeyCache(ttl_s=30, clock=clock)
    real = keys.generate("Officer Wang", "admin")
    assert not cache.verified(real.key)  # never looked up
    cache.get(real.key_id, lambda _: stored(real))
    assert cache.verified(real.key)
    forged = f"ep_{real.key_id}_{keys.generate('x', 'read').key.split('_', 2)[2]}"
    assert not cache.verified(forged)  # its id, another secret
    assert not cache.verified("not a key")
    clock.now += 31
    assert not cache.verified(real.key)


def test_revoked_and_unknown_keys_are_not_known() -> None:
    cache = KeyCache()
    revoked = keys.generate("gone", "read")
    cache.get(revoked.key_id, lambda _: stored(revoked, revoked=True))
    assert not cache.verified(revoked.key)
    unknown = keys.generate("nobody", "read")
    cache.get(unknown.key_id, lambda _: None)
    assert not cache.verified(unknown.key)


def test_admins_see_key_ids_and_others_only_names() -> None:
    assert ADMIN.actor == "Officer Wang (3f9a2c1d)"
    assert shown_actor(ADMIN.actor, ADMIN) == "Officer Wang (3f9a2c1d)"
    assert shown_actor(ADMIN.actor, READER) == "Officer Wang"
    assert shown_actor(ADMIN.actor, ANONYMOUS) == "Officer Wang"
    assert shown_actor("anonymous", READER) == "anonymous"


@given(st.text(min_size=1, max_size=200), st.text("0123456789abcdef", min_size=8, max_size=8))
def test_no_key_id_reaches_a_reader(name: str, key_id: str) -> None:
    actor = Caller(key_id, name, "admin").actor
    assert shown_actor(actor, READER) == name
