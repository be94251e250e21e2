"""`GET /v1/live`: vehicle positions and states as server-sent events, from the broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from api import live
from api.auth import Reader, reader
from api.database import DbSession
from api.errors import PROBLEM_RESPONSES, ApiError
from api.officers import grids
from api.scopes import GridView, visibility
from api.settings import ApiSettings

router = APIRouter(
    prefix="/v1", tags=["live"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)


@router.get(
    "/live",
    summary="Live vehicle positions and states (server-sent events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An endless `text/event-stream`: events `ready`, `position`, "
            "`status`, `hotspot` (a new hotspot in a new analysis run), `error`, and "
            "heartbeat comments.",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": 'event: position\ndata: {"vehicle":"patrol-01","seq":812,'
                    '"time":"2026-05-01T08:00:10Z","lat":39.893,"lon":116.462,'
                    '"values":{"pm25":41.0}}\n\n',
                }
            },
        }
    },
    openapi_extra=visibility("grids"),
)
def live_feed(request: Request, db: DbSession, who: Reader) -> StreamingResponse:
    """Needs `[mqtt]` in the API's settings (or ENVPATROL_MQTT_URL); without, a 503. Updates
    may be lost (QoS 0), and a client that reads too slowly loses its oldest positions: the
    stored readings are the record, this is the live view. Every client of a server process
    shares its one broker connection. New hotspots are found by polling the analysis runs every
    few seconds. A key limited to grids gets only the hotspots inside the grids it had when the
    stream began; positions and states of every vehicle, as from /v1/vehicles."""
    settings = cast(ApiSettings, request.app.state.settings)
    if settings.mqtt is None:
        raise ApiError(503, "live-feed-off", "this server has no broker configured ([mqtt])")
    hub = cast(live.LiveHub | None, request.app.state.live_hub)
    if hub is None:  # the app was not started through its lifespan
        raise ApiError(503, "live-feed-off", "the live feed is not running")
    shown = (
        None
        if who.scope is None
        else inside_scope(GridView.of(grids.all_grids(db.connection()), who.scope))
    )
    # The request's session would otherwise keep its connection (the key's lookup, the grids)
    # until the endless stream ends.
    db.close()
    return StreamingResponse(
        live.feed(hub, shown=shown),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def inside_scope(view: GridView) -> Callable[[live.LiveEvent], bool]:
    """Whether the viewer of `view` sees an event: a hotspot only inside its grids."""

    def shown(event: live.LiveEvent) -> bool:
        if event.kind != "hotspot":
            return True
        lon, lat = event.data.get("lon"), event.data.get("lat")
        if not isinstance(lon, float | int) or not isinstance(lat, float | int):
            return False
        return view.sees(float(lon), float(lat))

    return shown
