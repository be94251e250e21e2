from __future__ import annotations

import pytest

from api.settings import ApiSettings
from api.tiles import tiles
from edge.errors import SettingsError

DB = "postgresql://x@h/d"


def test_presets_carry_their_datum_and_credit() -> None:
    assert tiles(ApiSettings(database_url=DB)).url == ""  # no base map: offline
    osm = tiles(ApiSettings(database_url=DB, tile_provider="osm"))
    assert (osm.datum, osm.attribution) == ("wgs84", "© OpenStreetMap contributors")
    amap = tiles(ApiSettings(database_url=DB, tile_provider="amap"))
    assert amap.datum == "gcj02"
    assert "{x}" in amap.url
    tdt = tiles(ApiSettings(database_url=DB, tile_provider="tianditu", tile_key="abc"))
    assert tdt.datum == "wgs84"
    assert "LAYER=vec" in tdt.url
    assert "LAYER=cva" in tdt.overlay_url  # the names over the vector map
    assert tdt.url.endswith("tk=abc")


def test_an_explicit_url_wins_and_bad_presets_are_refused() -> None:
    own = tiles(
        ApiSettings(database_url=DB, tile_provider="amap", tile_url="/tiles/{z}/{x}/{y}.png")
    )
    assert (own.url, own.datum) == ("/tiles/{z}/{x}/{y}.png", "wgs84")
    with pytest.raises(SettingsError, match="tile_provider"):
        ApiSettings(database_url=DB, tile_provider="google")
    with pytest.raises(SettingsError, match="tile_key"):
        ApiSettings(database_url=DB, tile_provider="tianditu")
