"""Query parameters checked before any database work."""

from __future__ import annotations

import pytest

from api.params import hotspot_channel
from hotspots.floors import HOTSPOT_FLOORS
from store.conditions import QueryError


def test_temperature_and_humidity_have_no_hotspots() -> None:
    assert hotspot_channel("no2").name == "no2"
    for name in ("temperature", "humidity"):
        with pytest.raises(QueryError, match="not a pollutant"):
            hotspot_channel(name)
    assert "temperature" not in HOTSPOT_FLOORS
