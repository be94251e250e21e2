"""Routes imported from a GPX track, an NMEA log and a GeoJSON LineString, and driven."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.nmea import format_gga, format_rmc
from firmware_sim.geo import haversine_m
from firmware_sim.motion import PatrolDrive, SpeedProfile
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.route_import import RouteError, load_route, parse_geojson, parse_gpx, parse_nmea
from firmware_sim.scenario import parse_scenario

POINTS = [(39.8935, 116.4618), (39.89365, 116.4680), (39.89375, 116.4745), (39.8898, 116.4746)]

GPX = """<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="a logger" xmlns="http://www.topografix.com/GPX/1/1">
  <metadata><name>east patrol</name></metadata>
  <trk><name>east</name><trkseg>
{points}
  </trkseg></trk>
</gpx>
"""


def gpx_text(points: list[tuple[float, float]]) -> str:
    body = "\n".join(
        f'    <trkpt lat="{lat}" lon="{lon}"><ele>40</ele><time>2026-03-02T00:00:{i:02d}Z</time></trkpt>'
        for i, (lat, lon) in enumerate(points)
    )
    return GPX.format(points=body)


def nmea_log(points: list[tuple[float, float]], garbage: bool = True) -> bytes:
    """A receiver's log: GGA+RMC per second, with the noise real logs have (a binary UBX
    message, a sentence cut short, a void fix while searching)."""
    t0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    out = [format_rmc(t0, None, None, valid=False) + format_gga(t0, None, None, quality=0)]
    for i, (lat, lon) in enumerate(points, 1):
        moment = t0 + timedelta(seconds=i)
        out.append(format_gga(moment, lat, lon) + format_rmc(moment, lat, lon))
        if garbage and i == 2:
            out.append("\xb5b\x01\x07\x5c\x00garbage$GNRMC,0000")
    return "".join(out).encode("latin-1")


def test_a_gpx_track_becomes_a_drivable_route(tmp_path: Path) -> None:
    path = tmp_path / "east.gpx"
    path.write_text(gpx_text(POINTS), encoding="utf-8")
    route = load_route(path)
    assert route.name == "east"
    assert route.waypoints == POINTS
    assert not route.closed  # out and back
    drive = PatrolDrive(route, datetime(2026, 3, 2, tzinfo=UTC), SpeedProfile(), seed=1)
    later = drive.state(datetime(2026, 3, 2, tzinfo=UTC) + timedelta(minutes=5))
    assert min(haversine_m(later.lat, later.lon, *p) for p in POINTS) < 700


def test_an_nmea_log_becomes_a_route_skipping_what_is_not_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "drive.nmea"
    path.write_bytes(nmea_log(POINTS))
    route = load_route(path, closed=True)
    assert len(route.waypoints) == len(POINTS)
    for (lat, lon), (elat, elon) in zip(route.waypoints, POINTS, strict=True):
        assert haversine_m(lat, lon, elat, elon) < 0.5
    assert route.closed


def test_a_geojson_linestring_in_a_feature_collection(tmp_path: Path) -> None:
    coords = ",".join(f"[{lon}, {lat}]" for lat, lon in POINTS)
    path = tmp_path / "east.geojson"
    path.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
        f'"geometry": {{"type": "LineString", "coordinates": [{coords}]}}}}]}}',
        encoding="utf-8",
    )
    assert load_route(path).waypoints == POINTS


def test_scenarios_use_imported_routes_relative_to_their_file(tmp_path: Path) -> None:
    (tmp_path / "tracks").mkdir()
    (tmp_path / "tracks" / "east.gpx").write_text(gpx_text(POINTS), encoding="utf-8")
    (tmp_path / "log.txt").write_bytes(nmea_log(POINTS))
    scenario = parse_scenario(
        "start = 2026-03-02T08:00:00+08:00\n"
        "[[routes]]\nname='east'\nfile='tracks/east.gpx'\n"
        "[[routes]]\nname='logged'\nfile='log.txt'\nformat='nmea'\nclosed=true\n"
        "[[vehicles]]\nname='a'\nroute='east'\n[[vehicles]]\nname='b'\nroute='logged'\n",
        "s.toml",
        tmp_path,
    )
    from firmware_sim.patrol import build_route

    assert build_route(scenario.routes["east"]).waypoints == POINTS
    assert build_route(scenario.routes["logged"]).closed


def test_nearby_points_are_thinned() -> None:
    dense = [(39.89 + i * 1e-6, 116.47) for i in range(100)] + [(39.891, 116.47)]
    assert parse_gpx(gpx_text(dense))[0] == dense[0]  # the parser keeps them ...
    path_points = parse_gpx(gpx_text(dense))
    from firmware_sim.route_import import thin

    # 11 m of points 0.11 m apart: the loader keeps one per 5 m (0, 5, 10 m) and the far point.
    assert len(thin(path_points, 5.0)) == 4


@pytest.mark.parametrize(
    ("parse", "text", "problem"),
    [
        (parse_gpx, "<gpx><trk>", "not valid XML"),
        (parse_gpx, "<gpx><trk><trkseg><trkpt lat='1'/></trkseg></trk></gpx>", "lat or lon"),
        (parse_gpx, "<gpx></gpx>", "at least two"),
        (parse_geojson, '{"type": "Point", "coordinates": [1, 2]}', "expected a LineString"),
        (parse_geojson, '{"type": "LineString", "coordinates": [[1, 2], ["a"]]}', "coordinates[1]"),
        (parse_geojson, '{"type": "LineString", "coordinates": [[1, 95], [1, 2]]}', "not on Earth"),
    ],
)
def test_bad_route_files_say_what_is_wrong(parse: object, text: str, problem: str) -> None:
    with pytest.raises(RouteError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse(text)  # type: ignore[operator]


def test_an_nmea_log_without_a_fix_is_refused() -> None:
    with pytest.raises(RouteError, match="no valid fix"):
        parse_nmea(b"$GPTXT,01,01,02,hello*00\r\nrandom bytes")


@given(st.binary(max_size=300))
def test_the_nmea_route_parser_never_crashes_on_noise(noise: bytes) -> None:
    with contextlib.suppress(RouteError):
        parse_nmea(noise + nmea_log(POINTS[:2], garbage=False) + noise)


def test_builtin_loop_still_closed() -> None:
    assert SHUANGJING_LOOP.closed
    assert len(SHUANGJING_LOOP.junctions()) >= 8
