"""What a page of readings selects: the readings filters' combined SQL, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.conditions import BBox, TimeRange, VehicleFilter
from store.readings import ReadingFilters

T0 = datetime(2025, 3, 3, 8, 15, 30, tzinfo=UTC)
T1 = T0 + timedelta(hours=2)


def test_reading_filters_combine_their_conditions() -> None:
    filters = ReadingFilters(TimeRange(T0, T1), VehicleFilter("car-a"), BBox(0, 0, 1, 1))
    condition = filters.condition()
    assert condition.text() == (
        '(("time" >= %(time_start)s) AND ("time" < %(time_end)s))'
        " AND (vehicle = %(vehicle)s)"
        " AND (lon >= %(bbox_west)s AND lon <= %(bbox_east)s"
        " AND lat >= %(bbox_south)s AND lat <= %(bbox_north)s)"
    )
    assert set(condition.params) == {
        "time_start",
        "time_end",
        "vehicle",
        "bbox_west",
        "bbox_east",
        "bbox_south",
        "bbox_north",
    }
    assert ReadingFilters().condition().text() == "(TRUE)"
