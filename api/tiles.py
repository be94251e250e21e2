"""Base maps: presets for the tile providers a sub-district uses, with their datum and credit.

OpenStreetMap and Tianditu (天地图, the national base map; CGCS2000, within centimetres of WGS-84)
draw in WGS-84, so shapes go on them as stored. AMap (高德) draws in GCJ-02, so the dashboard
shifts every shape for display (static/datum.js). Tianditu's vector map has no names on it: its
annotation layer goes on top. An explicit `[dashboard] tile_url` always wins over a preset. None
of them is needed: the street layer (api/streets.py) works without any.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.settings import ApiSettings


@dataclass(frozen=True, slots=True)
class Tiles:
    url: str  # Leaflet template; "" for no base map
    overlay_url: str  # names drawn over the base map, or ""
    datum: str  # wgs84 or gcj02
    attribution: str


_TIANDITU = (
    "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}"
    "&TILECOL={x}&tk={key}"
)


def tiles(settings: ApiSettings) -> Tiles:
    """The base map the dashboard draws: the explicit settings, else the provider's preset."""
    if settings.tile_url or not settings.tile_provider:
        return Tiles(settings.tile_url, "", settings.tile_datum, settings.tile_attribution)
    if settings.tile_provider == "osm":
        return Tiles(
            "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
            "",
            "wgs84",
            settings.tile_attribution or "© OpenStreetMap contributors",
        )
    if settings.tile_provider == "tianditu":
        key = settings.tile_key
        return Tiles(
            _TIANDITU.replace("{layer}", "vec").replace("{key}", key),
            _TIANDITU.replace("{layer}", "cva").replace("{key}", key),
            "wgs84",
            settings.tile_attribution or "© 天地图 Tianditu",
        )
    return Tiles(  # amap
        "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8"
        "&x={x}&y={y}&z={z}",
        "",
        "gcj02",
        settings.tile_attribution or "© 高德地图 AutoNavi",
    )
