"""Request rate limits per API key and per client address, with the usual response headers.

A fixed one-minute window per identity: simple to reason about and to explain to an integrator,
and what the headers describe. `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
(seconds until the window ends) go on every limited response; a refused request is a 429
problem with `Retry-After`. Counts live in the process: behind several API processes each one
limits on its own.

Who is counted where:
- a request without a key counts against its client address (`anonymous_per_minute`), here in
  the middleware, before any route runs;
- a request with a key counts against that key only once the key is verified (`api.auth` calls
  `RateLimits.key`), so requests naming a key id with a made-up secret cannot use up, and so
  lock out, the real key's budget;
- a key that fails to verify counts against the client address as a failed authentication
  (`failed_auth_per_minute`). Past that, the address's requests with keys are refused here
  without a database lookup, except those with a key verified recently (still in the key
  cache): made-up key ids cannot bypass the limits, and a real key keeps working from an
  address someone else is misusing.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PROBLEM_MEDIA_TYPE, ApiError

__all__ = [
    "STATE_KEY",
    "WINDOW_S",
    "Decision",
    "FixedWindowLimiter",
    "RateLimitMiddleware",
    "RateLimitedError",
    "RateLimits",
    "client_address",
]

WINDOW_S = 60.0
# Where a request's scope state keeps the decision whose headers go on its response.
STATE_KEY = "rate_limit"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # whole seconds until the window ends, at least 1

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_s).encode()),
        ]
        if not self.allowed:
            out.append((b"retry-after", str(self.reset_s).encode()))
        return out


class FixedWindowLimiter:
    """At most `limit` hits per identity in each window of `window_s` seconds."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._window = -1
        self._counts: dict[str, int] = {}

    def hit(self, identity: str, limit: int) -> Decision:
        now = self._clock()
        window = math.floor(now / self.window_s)
        reset_s = max(1, math.ceil((window + 1) * self.window_s - now))
        with self._lock:
            if window != self._window:
                self._window = window
                self._counts = {}  # every identity starts afresh: old windows take no memory
            used = self._counts.get(identity, 0)
            if used >= limit:
                return Decision(False, limit, 0, reset_s)
            self._counts[identity] = used + 1
        return Decision(True, limit, limit - used - 1, reset_s)

    def exhausted(self, identity: str, limit: int) -> Decision | None:
        """A refusal if `identity` has used its `limit` in this window, else None; counts
        nothing."""
        now = self._clock()
        window = math.floor(now / self.window_s)
        reset_s = max(1, math.ceil((window + 1) * self.window_s - now))
        with self._lock:
            used = self._counts.get(identity, 0) if window == self._window else 0
        return Decision(False, limit, 0, reset_s) if used >= limit else None


class RateLimitedError(ApiError):
    """A request over its limit; the decision's headers go on the response."""

    def __init__(self, decision: Decision, who: str, what: str = "requests") -> None:
        super().__init__(
            429,
            "rate-limited",
            f"more than {decision.limit} {what} per minute from {who}; "
            f"retry in {decision.reset_s} s",
        )
        self.decision = decision


@dataclass(frozen=True, slots=True)
class RateLimits:
    """An app's limits (per minute; 0: off) and the limiter that counts against them."""

    limiter: FixedWindowLimiter
    key_per_minute: int
    anonymous_per_minute: int
    failed_auth_per_minute: int

    def anonymous(self, address: str) -> Decision | None:
        if self.anonymous_per_minute == 0:
            return None
        return self.limiter.hit(f"ip:{address}", self.anonymous_per_minute)

    def key(self, key_id: str) -> Decision | None:
        """Count a request of a verified key."""
        if self.key_per_minute == 0:
            return None
        return self.limiter.hit(f"key:{key_id}", self.key_per_minute)

    def failed_auth(self, address: str) -> None:
        """Count a key from `address` that did not verify."""
        if self.failed_auth_per_minute > 0:
            self.limiter.hit(f"auth:{address}", self.failed_auth_per_minute)

    def auth_blocked(self, address: str) -> Decision | None:
        """A refusal while `address` has failed to authenticate too often, else None."""
        if self.failed_auth_per_minute == 0:
            return None
        return self.limiter.exhausted(f"auth:{address}", self.failed_auth_per_minute)


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Limits requests under `prefix` (the versioned API); the dashboard and health are free.

    `known_key(key)` tells whether a key was verified recently, without a lookup.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: RateLimits,
        known_key: Callable[[str], bool],
        prefix: str = "/v1/",
    ) -> None:
        self.app = app
        self.limits = limits
        self.known_key = known_key
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        address = client_address(scope)
        key = _api_key(scope)
        if key:
            refused = self.limits.auth_blocked(address)
            if refused is not None and self.known_key(key):
                refused = None  # a key this address used successfully a moment ago
            if refused is not None:
                error = RateLimitedError(refused, "this address", "failed authentications")
                await _refuse(error, send)
                return
            # api.auth counts the request against the key once it is verified
        else:
            decision = self.limits.anonymous(address)
            if decision is not None and not decision.allowed:
                await _refuse(RateLimitedError(decision, "this address"), send)
                return
            state[STATE_KEY] = decision

        async def send_with_headers(message: Message) -> None:
            decision = state.get(STATE_KEY)
            if message["type"] == "http.response.start" and isinstance(decision, Decision):
                message = {**message, "headers": [*message.get("headers", []), *decision.headers()]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _api_key(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-api-key":
            return str(value.decode("latin-1"))
    return ""


async def _refuse(error: RateLimitedError, send: Send) -> None:
    body = orjson.dumps(error.problem_details().model_dump(exclude_none=True))
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *error.decision.headers(),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
