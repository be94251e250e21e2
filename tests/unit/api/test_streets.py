from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.streets import StreetFileError, _segment_m, parse_streets

LAT, LON = 39.8935, 116.4618


def line(name: str | None, *points: tuple[float, float], **extra: str) -> dict[str, Any]:
    props: dict[str, Any] = dict(extra)
    if name is not None:
        props["name"] = name
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [[lon, lat] for lat, lon in points]},
        "properties": props,
    }


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def test_the_nearest_named_street_within_reach() -> None:
    layer = parse_streets(
        collection(
            line("广渠路", (LAT, LON), (LAT, LON + 0.01), **{"name:en": "Guangqu Road"}),
            line("东三环中路", (LAT - 0.01, LON), (LAT + 0.01, LON)),
            line(None, (LAT + 0.0003, LON + 0.003), (LAT + 0.0003, LON + 0.004)),  # unnamed
        )
    )
    found = layer.street_at(LAT + 0.0002, LON + 0.005)  # ~22 m north of Guangqu Road
    assert found is not None
    assert found.name == "广渠路"
    assert found.names == {"en": "Guangqu Road"}
    assert layer.street_at(LAT + 0.0001, LON - 0.0003) is not None  # the 3rd Ring, ~26 m west
    assert layer.street_at(LAT + 0.002, LON + 0.005) is None  # ~220 m away
    assert len(layer.geojson["features"]) == 3  # the unnamed line is still drawn


@pytest.mark.parametrize(
    ("doc", "subject"),
    [
        ([], "streets"),
        ({"type": "FeatureCollection"}, "features"),
        (
            collection({"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}}),
            "features[0].geometry",
        ),
        (collection(line("a", (LAT, LON))), "features[0].geometry.coordinates"),
        (collection(line("a", (LAT, LON), (95.0, LON))), "features[0].geometry.coordinates[1]"),
        (
            collection(
                {
                    "type": "Feature",
                    "geometry": {"type": "LineString", "coordinates": [[1, 2], ["x", 3]]},
                }
            ),
            "features[0].geometry.coordinates[1]",
        ),
    ],
)
def test_malformed_files_name_the_first_fault(doc: Any, subject: str) -> None:
    with pytest.raises(StreetFileError) as caught:
        parse_streets(doc)
    assert caught.value.subject == subject


offsets = st.floats(-0.01, 0.01)


@given(
    st.lists(st.tuples(offsets, offsets, offsets, offsets), min_size=1, max_size=12),
    offsets,
    offsets,
)
def test_the_index_finds_what_a_scan_of_every_segment_finds(
    segments: list[tuple[float, float, float, float]], dlat: float, dlon: float
) -> None:
    features = [
        line(f"s{i}", (LAT + a, LON + b), (LAT + c, LON + d))
        for i, (a, b, c, d) in enumerate(segments)
    ]
    layer = parse_streets(collection(*features))
    lat, lon = LAT + dlat, LON + dlon
    distances = [
        _segment_m(lat, lon, LAT + a, LON + b, LAT + c, LON + d) for a, b, c, d in segments
    ]
    nearest = min(distances)
    found = layer.street_at(lat, lon, max_m=60.0)
    if nearest <= 60.0:
        assert found is not None
        assert math.isclose(distances[int(found.name[1:])], nearest, abs_tol=1e-6)
    else:
        assert found is None
