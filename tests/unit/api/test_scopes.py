"""Key scopes: parsing the apikey command's --grid and --subdistrict values, which grids a
scope holds, and which places a scoped key sees (property tests)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.auth import Caller, shown_actor
from api.geometry import parse_area
from api.live import LiveEvent
from api.officers.grids import Grid, grid_at
from api.routes.live import inside_scope
from api.scopes import (
    MAX_GRID_ID,
    MAX_NAME_CHARS,
    GridView,
    KeyScope,
    ScopeError,
    parse_grid_ids,
    parse_subdistrict,
    scope_of,
    visible_grids,
)
from api.text import text_problem

grid_ids = st.integers(1, MAX_GRID_ID)
blank = st.sampled_from(["", " ", "  ", "\t"])


@given(st.lists(st.lists(grid_ids, min_size=1, max_size=5), max_size=5), st.data())
def test_grid_ids_parse_back_however_they_are_spaced_and_grouped(
    groups: list[list[int]], data: st.DataObject
) -> None:
    values = []
    for group in groups:
        tokens = [data.draw(blank) + str(i) + data.draw(blank) for i in group]
        values.append(",".join(tokens))
    assert parse_grid_ids(values) == frozenset(i for g in groups for i in g)


@given(st.lists(st.text(max_size=30), max_size=4))
def test_any_grid_value_is_ids_or_a_scope_error_naming_the_option(values: list[str]) -> None:
    try:
        parsed = parse_grid_ids(values)
    except ScopeError as exc:
        refused: ScopeError | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.subject == "--grid"
        return
    for value in values:
        for token in value.split(","):
            assert token.strip().isascii()
            assert token.strip().isdigit()
    assert all(1 <= i <= MAX_GRID_ID for i in parsed)


@pytest.mark.parametrize(
    "value", ["", "3,", ",3", "3,,4", "0", "-1", "+3", "3.0", "1_0", "٣", "0x10", str(2**62 + 1)]
)
def test_what_is_not_a_grid_id_is_refused(value: str) -> None:
    with pytest.raises(ScopeError, match="--grid"):
        parse_grid_ids([value])


@given(st.text(max_size=MAX_NAME_CHARS + 20))
def test_a_subdistrict_name_is_one_storable_line_or_refused(value: str) -> None:
    try:
        name = parse_subdistrict(value)
    except ScopeError as exc:
        refused: ScopeError | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.subject == "--subdistrict"
        return
    assert name == value.strip()
    assert 1 <= len(name) <= MAX_NAME_CHARS
    assert text_problem(name) is None
    assert parse_subdistrict(name) == name


def test_no_option_is_the_whole_deployment_and_an_empty_scope_sees_nothing() -> None:
    assert scope_of([], []) is None
    assert scope_of(["3,7"], [" 双井街道 "]) == KeyScope(frozenset({3, 7}), frozenset({"双井街道"}))
    with pytest.raises(ScopeError):
        scope_of(["  "], [])
    with pytest.raises(ScopeError):
        scope_of([], ["a\x00b"])
    grid = column_grids(2)[0]
    assert visible_grids([grid], KeyScope()) == []
    assert GridView.of([grid], KeyScope()).place(0.5, 0.5) == (False, None)
    assert KeyScope().describe() == "nothing"


def column_grids(n: int, subdistricts: tuple[str | None, ...] = ()) -> list[Grid]:
    """n grids tiling [0, n] x [0, 1] as unit columns; grid i+1 is column i."""
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        ring = [[i, 0], [i + 1, 0], [i + 1, 1], [i, 1], [i, 0]]
        area = parse_area({"type": "Polygon", "coordinates": [ring]})
        district = subdistricts[i] if i < len(subdistricts) else None
        out.append(Grid(i + 1, f"grid {i:02d}", "someone", area, {}, now, now, district))
    return out


@given(
    st.integers(1, 8),
    st.data(),
    st.floats(-0.5, 9.0, allow_nan=False),
    st.floats(-0.5, 1.5, allow_nan=False),
)
def test_a_scoped_key_sees_a_place_exactly_when_the_grid_holding_it_is_its_own(
    n: int, data: st.DataObject, lon: float, lat: float
) -> None:
    """Grids that tile an area: filtering places by the scope's polygons agrees with tagging
    them against every grid first, also on shared edges (the half-open crossing rule)."""
    districts = tuple(data.draw(st.sampled_from([None, "东", "西"])) for _ in range(n))
    known = column_grids(n, districts)
    ids = data.draw(st.frozensets(st.integers(1, n)))
    names = data.draw(st.frozensets(st.sampled_from(["东", "西", "北"])))
    lon = data.draw(st.sampled_from([lon, float(data.draw(st.integers(0, n)))]))
    scope = KeyScope(ids, names)
    seen, tag = GridView.of(known, scope).place(lon, lat)
    everyone = grid_at(known, lon, lat)
    assert seen == (everyone is not None and scope.holds(everyone))
    assert tag == (everyone if seen else None)
    assert GridView.of(known, None).place(lon, lat) == (True, everyone)


def test_a_grid_of_another_area_is_never_named_where_grids_overlap() -> None:
    known = column_grids(1, ("东",))
    now = datetime.now(UTC)
    wide = parse_area(
        {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 1], [0, 1], [0, 0]]]}
    )
    other = Grid(9, "a wide grid", "x", wide, {}, now, now, "西")  # first by name
    both = [other, *known]
    assert grid_at(both, 0.5, 0.5) is other
    assert GridView.of(both, KeyScope(subdistricts=frozenset({"东"}))).place(0.5, 0.5) == (
        True,
        known[0],
    )


def test_only_the_deployments_admins_see_key_ids() -> None:
    actor = Caller("3f9a2c1d", "Officer Wang", "admin").actor
    scoped_admin = Caller("0badcafe", "Shuangjing desk", "admin", KeyScope(frozenset({1})))
    assert shown_actor(actor, scoped_admin) == "Officer Wang"
    assert shown_actor(actor, Caller("1badcafe", "District", "admin")) == actor


def test_a_scoped_live_viewer_gets_hotspots_only_inside_its_grids() -> None:
    shown = inside_scope(GridView.of(column_grids(2), KeyScope(frozenset({1}))))
    position = LiveEvent("position", {"vehicle": "car-a", "lat": 0.5, "lon": 1.5})
    assert shown(position)  # vehicles are the same for every key
    assert shown(LiveEvent("hotspot", {"id": "1-0", "lat": 0.5, "lon": 0.5}))
    assert not shown(LiveEvent("hotspot", {"id": "1-1", "lat": 0.5, "lon": 1.5}))
    assert not shown(LiveEvent("hotspot", {"id": "1-2", "lat": None, "lon": 0.5}))
