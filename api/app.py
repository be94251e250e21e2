"""The application factory: everything is built from the settings passed in, nothing at import."""

from __future__ import annotations

from fastapi import FastAPI

from api.database import Database
from api.errors import install_error_handlers
from api.routes import cells, health, hotspots, pollutants, readings, vehicles
from api.settings import ApiSettings
from edge import __version__

DESCRIPTION = """\
Readings, per-cell statistics and pollution hotspots from environmental sensor boxes on city
patrol vehicles. Values are in each channel's canonical unit (see `/v1/pollutants`). Statistics
from mobile monitoring are indicative, not compliance values.

Errors are problem details (`application/problem+json`, RFC 9457).
"""


def create_app(settings: ApiSettings) -> FastAPI:
    app = FastAPI(
        title="envpatrol API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = Database(settings)
    install_error_handlers(app)
    for module in (readings, cells, hotspots, vehicles, pollutants, health):
        app.include_router(module.router)
    return app
