"""gpsd's JSON protocol: the pure decoder, line by line (the client against a fake gpsd on a
local socket is in tests/integration/test_gpsd_client.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.gpsd import GpsdDecoder

VERSION = {
    "class": "VERSION",
    "release": "3.25",
    "rev": "3.25",
    "proto_major": 3,
    "proto_minor": 15,
}
SKY = {
    "class": "SKY",
    "device": "/dev/ttyACM0",
    "hdop": 0.8,
    "satellites": [
        {"PRN": 1, "used": True},
        {"PRN": 7, "used": True},
        {"PRN": 9, "used": False},
        {"PRN": 12, "used": True},
        {"PRN": 30, "used": True},
    ],
}


def tpv(
    mode: int = 3, lat: float = 39.8917, lon: float = 116.4661, **extra: object
) -> dict[str, object]:
    return {
        "class": "TPV",
        "device": "/dev/ttyACM0",
        "mode": mode,
        "time": "2026-11-21T08:00:01.000Z",
        "lat": lat,
        "lon": lon,
        "altMSL": 45.2,
        "speed": 6.1,
        "track": 87.5,
        **extra,
    }


def line(doc: dict[str, object]) -> bytes:
    return json.dumps(doc).encode()


def test_tpv_after_sky_makes_a_full_fix() -> None:
    decoder = GpsdDecoder()
    assert decoder.line(line(SKY)) is None
    fix = decoder.line(line(tpv()))
    assert fix is not None
    assert fix.valid
    assert fix.time == datetime(2026, 11, 21, 8, 0, 1, tzinfo=UTC)
    assert (fix.lat, fix.lon) == (39.8917, 116.4661)
    assert (fix.satellites, fix.hdop, fix.quality) == (4, 0.8, 1)
    assert (fix.speed_mps, fix.course_deg, fix.altitude_m) == (6.1, 87.5, 45.2)


def test_usat_and_dgps_status() -> None:
    decoder = GpsdDecoder()
    decoder.line(line({"class": "SKY", "uSat": 9, "hdop": 1.2}))
    fix = decoder.line(line(tpv(status=2)))
    assert fix is not None
    assert (fix.satellites, fix.quality) == (9, 2)


def test_no_fix_modes_give_an_invalid_fix() -> None:
    decoder = GpsdDecoder()
    fix = decoder.line(line({"class": "TPV", "mode": 1, "time": "2026-11-21T08:00:01Z"}))
    assert fix is not None
    assert not fix.valid
    assert fix.quality == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1,2]",
        b'{"class":"TPV","mode":"3"}',
        b'{"class":"TPV","mode":3,"time":"yesterday"}',
        b"\xff\xfe",
    ],
)
def test_bad_lines_are_counted_not_raised(raw: bytes) -> None:
    decoder = GpsdDecoder()
    assert decoder.line(raw) is None
    assert decoder.bad_lines == 1


@given(st.binary(max_size=300))
def test_decoder_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    GpsdDecoder().line(raw)


@given(
    st.dictionaries(
        st.sampled_from(
            ["class", "mode", "time", "lat", "lon", "speed", "track", "status", "hdop", "uSat"]
        ),
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
    )
)
def test_decoder_never_raises_on_odd_reports(doc: dict[str, object]) -> None:
    decoder = GpsdDecoder()
    decoder.line(json.dumps({**doc, "class": "SKY"}).encode())
    fix = decoder.line(json.dumps({**doc, "class": "TPV"}).encode())
    if fix is not None and fix.valid:
        assert -90 <= fix.lat <= 90
        assert -180 <= fix.lon <= 180
