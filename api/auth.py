"""Who is calling: the `X-API-Key` header checked against the stored key hashes.

Dependencies for routes: `Reader` (any valid key; no key at all only when reads are open),
`Admin` (an admin key) and `DeploymentAdmin` (an admin key not limited to grids, for changes to
the whole deployment). A missing or unknown key is a 401, a read key on an admin route a 403,
a key limited to grids (`Caller.scope`, api.scopes) on a deployment-wide change a 403 too.
Verified keys are remembered for `CACHE_S` seconds, so a revoked key stops working within that
time without every request paying a lookup. A verified key's request counts against that key's
rate limit, a key that fails to verify against the client address (`api.ratelimit`).

Key ids name keys to their holders and to the deployment's admins (admin keys without a scope,
who can have keys revoked); other callers see a case's or a run request's actor by the key's
name alone (`shown_actor`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from api import keys
from api.database import DbSession
from api.errors import ApiError
from api.ratelimit import STATE_KEY, RateLimitedError, RateLimits, client_address
from api.scopes import KeyScope
from api.settings import ApiSettings

HEADER = "X-API-Key"
CACHE_S = 30.0

_scheme = APIKeyHeader(
    name=HEADER,
    auto_error=False,
    description="An API key from `envpatrol apikey create`. Read routes need one when the "
    "server requires it ([auth] read_key_required); write routes need an admin key.",
)


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str | None  # None: anonymous
    name: str
    role: str  # anonymous, read or admin
    scope: KeyScope | None = None  # the grids it is limited to; None: the whole deployment

    @property
    def actor(self) -> str:
        """How the caller is named in a case's history."""
        return "anonymous" if self.key_id is None else f"{self.name} ({self.key_id})"


ANONYMOUS = Caller(None, "anonymous", "anonymous")
_KEY_IN_ACTOR = re.compile(r"(.*) \([0-9a-f]{8}\)", re.DOTALL)


def shown_actor(actor: str, to: Caller) -> str:
    """An actor as `Caller.actor` recorded it, for `to` to read: the deployment's admins see the
    key id, others (admins limited to grids too) only the key's name."""
    if to.role == "admin" and to.scope is None:
        return actor
    match = _KEY_IN_ACTOR.fullmatch(actor)
    return actor if match is None else match.group(1)


class KeyCache:
    """Stored keys by key id, each kept for `ttl_s` seconds (also when unknown)."""

    def __init__(self, ttl_s: float = CACHE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, keys.StoredKey | None]] = {}

    def get(
        self, key_id: str, load: Callable[[str], keys.StoredKey | None]
    ) -> keys.StoredKey | None:
        now = self._clock()
        entry = self._fresh(key_id, now)
        if entry is not None:
            return entry[1]
        stored = load(key_id)
        with self._lock:
            if len(self._entries) > 10_000:  # unknown ids sprayed at us must not grow it forever
                self._entries.clear()
            self._entries[key_id] = (now, stored)
        return stored

    def verified(self, key: str) -> bool:
        """Whether `key` itself was verified within `ttl_s` (and not revoked), without a lookup."""
        key_id = keys.key_id_of(key)
        if key_id is None:
            return False
        entry = self._fresh(key_id, self._clock())
        if entry is None:
            return False
        stored = entry[1]
        return stored is not None and stored.revoked_at is None and keys.matches(key, stored)

    def _fresh(self, key_id: str, now: float) -> tuple[float, keys.StoredKey | None] | None:
        """The cached entry of `key_id` if it is younger than `ttl_s`."""
        with self._lock:
            entry = self._entries.get(key_id)
        return entry if entry is not None and now - entry[0] < self.ttl_s else None

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._entries.pop(key_id, None)


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail)


def caller(
    request: Request,
    db: DbSession,
    key: Annotated[str | None, Security(_scheme)] = None,
) -> Caller:
    """The caller named by the key, or ANONYMOUS without one; 401 for a key that is not valid."""
    if key is None or key == "":
        return ANONYMOUS
    limits = cast(RateLimits, request.app.state.rate_limits)
    address = client_address(request.scope)
    key_id = keys.key_id_of(key)
    if key_id is None:
        limits.failed_auth(address)
        raise _unauthorized(f"{HEADER} is not an envpatrol API key (ep_<id>_<secret>)")
    cache = cast(KeyCache, request.app.state.key_cache)
    stored = cache.get(key_id, lambda kid: keys.find(db.connection(), kid))
    if stored is None or not keys.matches(key, stored):
        limits.failed_auth(address)
        raise _unauthorized("unknown API key")
    if stored.revoked_at is not None:
        limits.failed_auth(address)
        raise _unauthorized(f"API key {key_id} was revoked")
    decision = limits.key(key_id)
    setattr(request.state, STATE_KEY, decision)  # its headers go on the response
    if decision is not None and not decision.allowed:
        raise RateLimitedError(decision, "this API key")
    return Caller(stored.key_id, stored.name, stored.role, stored.scope)


CallerDep = Annotated[Caller, Depends(caller)]


def reader(request: Request, who: CallerDep) -> Caller:
    settings = cast(ApiSettings, request.app.state.settings)
    if who.key_id is None and settings.read_key_required:
        raise _unauthorized(f"this server requires an API key in the {HEADER} header")
    return who


def admin(who: CallerDep) -> Caller:
    if who.key_id is None:
        raise _unauthorized(f"an admin API key is required in the {HEADER} header")
    if who.role != "admin":
        raise ApiError(403, "forbidden", f"API key {who.key_id} has role {who.role}, not admin")
    return who


def deployment_admin(who: Annotated[Caller, Depends(admin)]) -> Caller:
    if who.scope is not None:
        raise ApiError(
            403,
            "forbidden",
            f"API key {who.key_id} is limited to {who.scope.describe()}; this changes the whole "
            "deployment and needs an admin key without a scope",
        )
    return who


Reader = Annotated[Caller, Depends(reader)]
Admin = Annotated[Caller, Depends(admin)]
DeploymentAdmin = Annotated[Caller, Depends(deployment_admin)]
