"""The filters every read query is built from: validation and the SQL they render, without a
database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from store.conditions import BBox, Condition, Cursor, QueryError, TimeRange, VehicleFilter

T0 = datetime(2025, 3, 3, 8, 15, 30, tzinfo=UTC)
T1 = T0 + timedelta(hours=2)


def test_time_range_renders_a_half_open_interval() -> None:
    condition = TimeRange(T0, T1).condition()
    assert condition.text() == '("time" >= %(time_start)s) AND ("time" < %(time_end)s)'
    assert condition.params == {"time_start": T0, "time_end": T1}


def test_time_range_open_ends() -> None:
    assert TimeRange().condition().text() == "TRUE"
    assert TimeRange().condition().params == {}
    assert TimeRange(start=T0).condition().text() == '("time" >= %(time_start)s)'
    assert TimeRange(end=T1).condition("bucket").text() == '("bucket" < %(time_end)s)'


@pytest.mark.parametrize(("start", "end"), [(T1, T0), (T0, T0)])
def test_time_range_must_move_forward(start: datetime, end: datetime) -> None:
    with pytest.raises(QueryError) as caught:
        TimeRange(start, end)
    assert caught.value.subject == "start"


def test_time_range_needs_zones() -> None:
    with pytest.raises(QueryError) as caught:
        TimeRange(end=datetime(2025, 3, 3))  # no zone: the point of the test
    assert caught.value.subject == "end"


def test_whole_hours_widen_to_utc_hour_boundaries() -> None:
    beijing = timezone(timedelta(hours=8))
    hours = TimeRange(T0.astimezone(beijing), T1).whole_hours()
    assert hours.start == datetime(2025, 3, 3, 8, tzinfo=UTC)
    assert hours.end == datetime(2025, 3, 3, 11, tzinfo=UTC)
    exact = TimeRange(datetime(2025, 3, 3, 8, tzinfo=UTC), datetime(2025, 3, 3, 9, tzinfo=UTC))
    assert exact.whole_hours() == exact
    assert TimeRange().whole_hours() == TimeRange()


def test_bbox_parses_and_renders() -> None:
    box = BBox.parse("116.3,39.8,116.5,40")
    assert box == BBox(116.3, 39.8, 116.5, 40.0)
    condition = box.condition()
    assert condition.text() == (
        "lon >= %(bbox_west)s AND lon <= %(bbox_east)s"
        " AND lat >= %(bbox_south)s AND lat <= %(bbox_north)s"
    )
    assert condition.params == {
        "bbox_west": 116.3,
        "bbox_east": 116.5,
        "bbox_south": 39.8,
        "bbox_north": 40.0,
    }


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1,2,3",
        "1,2,3,4,5",
        "a,b,c,d",
        "inf,0,1,1",
        "1,0,0,1",
        "0,1,1,0",
        "0,0,181,1",
        "0,-91,1,0",
    ],
)
def test_bad_bboxes_are_refused(text: str) -> None:
    with pytest.raises(QueryError) as caught:
        BBox.parse(text)
    assert caught.value.subject == "bbox"


def test_vehicle_filter() -> None:
    condition = VehicleFilter("patrol-01").condition()
    assert condition.text() == "vehicle = %(vehicle)s"
    assert condition.params == {"vehicle": "patrol-01"}
    for bad in ("", "a/b", "x" * 65, "+"):
        with pytest.raises(QueryError):
            VehicleFilter(bad)


def test_conditions_refuse_clashing_parameter_names() -> None:
    part = Condition(sql.SQL("x = %(a)s"), {"a": 1})
    with pytest.raises(ValueError, match="share parameter names"):
        Condition.all([part, part])


def test_cursor_renders_a_keyset_condition() -> None:
    condition = Cursor(T0, "car-a", 7).condition()
    assert "(time, vehicle, seq) > (%(cursor_time)s, %(cursor_vehicle)s, %(cursor_seq)s)" in (
        condition.text()
    )
    assert condition.params == {"cursor_time": T0, "cursor_vehicle": "car-a", "cursor_seq": 7}


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True),
    st.integers(min_value=0, max_value=2**63 - 1),
)
def test_cursors_round_trip(moment: datetime, vehicle: str, seq: int) -> None:
    cursor = Cursor(moment, vehicle, seq)
    text = cursor.encode()
    assert text.isascii()
    assert "=" not in text
    assert Cursor.decode(text) == cursor


@pytest.mark.parametrize("text", ["", "!!!", "bm90IGpzb24", "WzEsMiwzXQ", "WzIsIngiLCJhIiwxXQ"])
def test_foreign_cursors_are_refused(text: str) -> None:
    with pytest.raises(QueryError) as caught:
        Cursor.decode(text)
    assert caught.value.subject == "cursor"
