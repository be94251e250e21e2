"""The application factory: everything is built from the settings passed in, nothing at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api.auth import KeyCache
from api.database import Database, ReadFromMiddleware
from api.errors import install_error_handlers
from api.live import LiveHub, LiveStats
from api.ratelimit import FixedWindowLimiter, RateLimitMiddleware, RateLimits
from api.routes import (
    cases,
    cells,
    dashboard,
    grids,
    health,
    hotspot_runs,
    hotspots,
    live,
    pollutants,
    readings,
    reports,
    sites,
    streets,
    vehicles,
)
from api.settings import ApiSettings
from api.streets import NO_STREETS, StreetLayer, load_streets
from api.strict_query import reject_unknown_query
from edge import __version__
from hotspots.verification import BeforeAfterTest, stored_before_after

DESCRIPTION = """\
Readings, per-cell statistics and pollution hotspots from environmental sensor boxes on city
patrol vehicles, and the officers' management grids and cases. Values are in each channel's
canonical unit (see `/v1/pollutants`). Statistics from mobile monitoring are indicative, not
compliance values.

Authentication: an API key in the `X-API-Key` header (`envpatrol apikey create`). Read routes
need a key of role `read` or `admin` when the server requires keys for reads; write routes
always need an `admin` key. A missing or invalid key where one is needed is a 401, a read key
on an admin route a 403. Requests under `/v1` are rate limited per verified key (or per address
without one), and failed authentications per address: see the `RateLimit-*` headers; a 429
carries `Retry-After`.

A key may be limited to some management grids (by id or sub-district). Each operation's
`x-envpatrol-scope` says what such a key gets: `grids`, only what lies in its grids (anything
else is answered as missing, 404); `deployment`, the same answer as for any key; `unscoped`, a
change to the whole deployment that needs a key without a scope (else 403).

Errors are problem details (`application/problem+json`, RFC 9457).
"""


def create_app(
    settings: ApiSettings,
    *,
    before_after: BeforeAfterTest = stored_before_after,
    limiter: FixedWindowLimiter | None = None,
) -> FastAPI:
    """`before_after` is the test `POST /v1/cases/{id}/verify` runs; `limiter` the rate limiter
    (one with its own clock in tests)."""
    database = Database(settings)

    live_stats = LiveStats()

    @asynccontextmanager
    async def lifespan(served: FastAPI) -> AsyncIterator[None]:
        # One broker connection per process for every live viewer (made on the first), on the
        # event loop that serves them.
        live_hub = (
            None
            if settings.mqtt is None
            else LiveHub.for_broker(settings.mqtt, database.connect, live_stats)
        )
        served.state.live_hub = live_hub
        try:
            yield
        finally:
            served.state.live_hub = None
            if live_hub is not None:
                await live_hub.close()
            database.close_idle()

    app = FastAPI(
        lifespan=lifespan,
        title="envpatrol API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,  # served by api.routes.dashboard from local files
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.streets = (
        load_streets(settings.streets_file)
        if settings.streets_file
        else StreetLayer([], NO_STREETS)
    )
    app.state.database = database
    key_cache = KeyCache()
    app.state.key_cache = key_cache
    rate_limits = RateLimits(
        limiter=limiter or FixedWindowLimiter(),
        key_per_minute=settings.key_per_minute,
        anonymous_per_minute=settings.anonymous_per_minute,
        failed_auth_per_minute=settings.failed_auth_per_minute,
    )
    app.state.rate_limits = rate_limits
    app.state.before_after = before_after
    install_error_handlers(app)
    app.state.live_stats = live_stats
    app.state.live_hub = None  # while the app runs: its LiveHub
    routers = (
        readings,
        cells,
        hotspots,
        hotspot_runs,
        sites,
        streets,
        reports,
        vehicles,
        pollutants,
        grids,
        cases,
        live,
        health,
    )
    for module in routers:
        app.include_router(module.router, dependencies=[Depends(reject_unknown_query)])
    app.include_router(dashboard.router)
    dashboard.mount_static(app, settings)
    app.add_middleware(RateLimitMiddleware, limits=rate_limits, known_key=key_cache.verified)
    app.add_middleware(ReadFromMiddleware)
    return app
