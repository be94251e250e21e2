"""Request rate limits per API key and per client address, with the usual response headers.

A fixed one-minute window per identity: simple to reason about and to explain to an integrator,
and what the headers describe. `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
(seconds until the window ends) go on every limited response; a refused request is a 429
problem with `Retry-After`. The identity is the key id of a well-formed `X-API-Key` (a key that
then fails to verify is refused with a 401 anyway) or else the client address. Counts live in
the process: behind several API processes each one limits on its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import keys
from api.errors import PROBLEM_MEDIA_TYPE, ApiError

WINDOW_S = 60.0


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


class RateLimitMiddleware:
    """Limits requests under `prefix` (the versioned API); the dashboard and health are free."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        key_per_minute: int,
        anonymous_per_minute: int,
        limiter: FixedWindowLimiter | None = None,
        prefix: str = "/v1/",
    ) -> None:
        self.app = app
        self.key_per_minute = key_per_minute
        self.anonymous_per_minute = anonymous_per_minute
        self.limiter = limiter or FixedWindowLimiter()
        self.prefix = prefix

    def identity(self, scope: Scope) -> tuple[str, int]:
        for name, value in scope.get("headers", []):
            if name == b"x-api-key":
                key_id = keys.key_id_of(value.decode("latin-1"))
                if key_id is not None:
                    return f"key:{key_id}", self.key_per_minute
                break
        client = scope.get("client")
        return f"ip:{client[0] if client else 'unknown'}", self.anonymous_per_minute

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        identity, limit = self.identity(scope)
        if limit == 0:
            await self.app(scope, receive, send)
            return
        decision = self.limiter.hit(identity, limit)
        if not decision.allowed:
            await _refuse(decision, identity, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *decision.headers()]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(decision: Decision, identity: str, send: Send) -> None:
    who = "this API key" if identity.startswith("key:") else "this address"
    detail = (
        f"more than {decision.limit} requests per minute from {who}; retry in {decision.reset_s} s"
    )
    body = orjson.dumps(
        ApiError(429, "rate-limited", detail).problem_details().model_dump(exclude_none=True)
    )
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *decision.headers(),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
