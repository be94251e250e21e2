"""The demo's street layer: the Shuangjing loop's streets as a GeoJSON street file.

The names are those the loop's waypoints are annotated with (firmware_sim.route): Guangqu Road
along the north, Xidawang Road down the east side, the East 3rd Ring up the west side. The
streets through the blocks in between carry no name here, so they are drawn but name nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firmware_sim.route import SHUANGJING_LOOP

# (zh, en, the loop's waypoint indices along the street); None: an unnamed street
_STREETS: tuple[tuple[str | None, str | None, tuple[int, ...]], ...] = (
    ("广渠路", "Guangqu Road", (0, 1, 2)),
    ("西大望路", "Xidawang Road", (2, 3, 4)),
    (None, None, (4, 5, 6, 7, 8, 9)),
    ("东三环中路", "East 3rd Ring Middle Road", (9, 10, 0)),
)


def shuangjing_streets() -> dict[str, Any]:
    points = SHUANGJING_LOOP.waypoints
    features = []
    for zh, en, indices in _STREETS:
        props: dict[str, Any] = {} if zh is None else {"name": zh, "name:zh": zh, "name:en": en}
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[points[i][1], points[i][0]] for i in indices],
                },
                "properties": props,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def write_streets(path: Path) -> Path:
    path.write_text(json.dumps(shuangjing_streets(), ensure_ascii=False), encoding="utf-8")
    return path
