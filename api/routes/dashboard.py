"""The officers' dashboard at `/`, its settings, and the API docs, all served from this host.

The page's own files are in api/dashboard/static (committed). The libraries it uses (Leaflet,
and Swagger UI for /docs) come from the npm registry: `api/dashboard/build` installs them as
locked in package-lock.json and copies them to api/dashboard/vendor (not committed), served at
/vendor. Without that step the page and /docs say what to run instead of loading anything from
a CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from api.scopes import visibility
from api.settings import ApiSettings
from api.tiles import tiles

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "dashboard"
STATIC_DIR = PACKAGE_DIR / "static"
DEFAULT_VENDOR_DIR = PACKAGE_DIR / "vendor"

router = APIRouter(tags=["dashboard"])

MISSING = """<!doctype html><meta charset="utf-8"><title>envpatrol</title>
<h1>{title}</h1><p>The front-end libraries are not installed on this server. Run
<code>api/dashboard/build</code> (needs node and npm), or set <code>[dashboard] static_dir</code>
to where they are, then reload.</p>"""


def vendor_dir(settings: ApiSettings) -> Path:
    return Path(settings.static_dir) if settings.static_dir else DEFAULT_VENDOR_DIR


class DashboardConfig(BaseModel):
    tile_url: str = Field(description="Base-map tile template; empty: no base map.")
    tile_datum: str = Field(description="wgs84, or gcj02: shapes are shifted for display.")
    tile_attribution: str
    tile_overlay_url: str = Field(description="Names drawn over the base map; empty: none.")
    read_key_required: bool
    live: bool = Field(description="Whether /v1/live has a broker to listen to.")
    vendor: bool = Field(description="Whether the front-end libraries are installed.")
    timezone: str = Field(description="IANA zone the page shows times in.")


def _settings(request: Request) -> ApiSettings:
    return cast(ApiSettings, request.app.state.settings)


@router.get("/", include_in_schema=False, openapi_extra=visibility("deployment"))
def dashboard(request: Request) -> Response:
    if not (vendor_dir(_settings(request)) / "leaflet" / "leaflet.js").is_file():
        return HTMLResponse(MISSING.format(title="envpatrol dashboard"), status_code=503)
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get(
    "/dashboard/config.json",
    summary="What the dashboard needs to know",
    openapi_extra=visibility("deployment"),
)
def dashboard_config(request: Request) -> DashboardConfig:
    settings = _settings(request)
    base = tiles(settings)
    return DashboardConfig(
        tile_url=base.url,
        tile_datum=base.datum,
        tile_attribution=base.attribution,
        tile_overlay_url=base.overlay_url,
        read_key_required=settings.read_key_required,
        live=settings.mqtt is not None,
        vendor=(vendor_dir(settings) / "leaflet" / "leaflet.js").is_file(),
        timezone=settings.timezone,
    )


@router.get("/docs", include_in_schema=False, openapi_extra=visibility("deployment"))
def docs(request: Request) -> Response:
    """Swagger UI from /vendor/swagger-ui (never a CDN)."""
    if not (vendor_dir(_settings(request)) / "swagger-ui" / "swagger-ui-bundle.js").is_file():
        return HTMLResponse(
            MISSING.format(title="envpatrol API docs (swagger UI not installed)")
            + '<p>The OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</p>',
            status_code=503,
        )
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="envpatrol API",
        swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/vendor/swagger-ui/favicon-32x32.png",
    )


def mount_static(app: FastAPI, settings: ApiSettings) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # check_dir=False: the API starts before (or without) the build; requests then get 404s.
    app.mount(
        "/vendor", StaticFiles(directory=vendor_dir(settings), check_dir=False), name="vendor"
    )
