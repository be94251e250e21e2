"""Who is calling: the `X-API-Key` header checked against the stored key hashes.

Dependencies for routes: `Reader` (any valid key; no key at all only when reads are open) and
`Admin` (an admin key). A missing or unknown key is a 401, a read key on an admin route a 403.
Verified keys are remembered for `CACHE_S` seconds, so a revoked key stops working within that
time without every request paying a lookup.
"""

from __future__ import annotations

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

    @property
    def actor(self) -> str:
        """How the caller is named in a case's history."""
        return "anonymous" if self.key_id is None else f"{self.name} ({self.key_id})"


ANONYMOUS = Caller(None, "anonymous", "anonymous")


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
        with self._lock:
            entry = self._entries.get(key_id)
        if entry is not None and now - entry[0] < self.ttl_s:
            return entry[1]
        stored = load(key_id)
        with self._lock:
            if len(self._entries) > 10_000:  # unknown ids sprayed at us must not grow it forever
                self._entries.clear()
            self._entries[key_id] = (now, stored)
        return stored

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
    key_id = keys.key_id_of(key)
    if key_id is None:
        raise _unauthorized(f"{HEADER} is not an envpatrol API key (ep_<id>_<secret>)")
    cache = cast(KeyCache, request.app.state.key_cache)
    stored = cache.get(key_id, lambda kid: keys.find(db.connection(), kid))
    if stored is None or not keys.matches(key, stored):
        raise _unauthorized("unknown API key")
    if stored.revoked_at is not None:
        raise _unauthorized(f"API key {key_id} was revoked")
    return Caller(stored.key_id, stored.name, stored.role)


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


Reader = Annotated[Caller, Depends(reader)]
Admin = Annotated[Caller, Depends(admin)]
