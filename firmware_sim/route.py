"""Patrol routes: loops (or out-and-back tracks) of waypoints, walked by distance."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass

from firmware_sim.geo import bearing_deg, haversine_m


@dataclass(frozen=True, slots=True)
class RoutePoint:
    lat: float
    lon: float
    heading_deg: float


class Route:
    """A closed loop through `waypoints` (the last joins the first); with `closed=False` an
    out-and-back track: the vehicle drives to the last waypoint and returns the same way."""

    def __init__(
        self, name: str, waypoints: list[tuple[float, float]], *, closed: bool = True
    ) -> None:
        if len(waypoints) < 2:
            raise ValueError("a route needs at least two waypoints")
        self.name = name
        self.closed = closed
        self.waypoints = list(waypoints)
        loop = (
            [*self.waypoints, self.waypoints[0]]
            if closed
            else [*self.waypoints, *reversed(self.waypoints[:-1])]
        )
        self._cumulative = [0.0]
        for (la1, lo1), (la2, lo2) in itertools.pairwise(loop):
            self._cumulative.append(self._cumulative[-1] + haversine_m(la1, lo1, la2, lo2))
        self._loop = loop
        self.length_m = self._cumulative[-1]

    def at(self, distance_m: float) -> RoutePoint:
        """The point `distance_m` along the loop (wrapping around)."""
        d = distance_m % self.length_m
        i = max(0, bisect.bisect_right(self._cumulative, d) - 1)
        i = min(i, len(self._loop) - 2)
        (la1, lo1), (la2, lo2) = self._loop[i], self._loop[i + 1]
        seg = self._cumulative[i + 1] - self._cumulative[i]
        f = 0.0 if seg == 0 else (d - self._cumulative[i]) / seg
        return RoutePoint(
            la1 + (la2 - la1) * f, lo1 + (lo2 - lo1) * f, bearing_deg(la1, lo1, la2, lo2)
        )

    def junctions(self, min_turn_deg: float = 30.0) -> list[float]:
        """Distances along the loop of the waypoints where the route turns by at least
        `min_turn_deg`: where a patrol vehicle meets a junction and may have to stop."""
        out: list[float] = []
        n = len(self._loop) - 1
        for i in range(n):
            before = self._loop[i - 1] if i > 0 else self._loop[n - 1]
            here, after = self._loop[i], self._loop[i + 1]
            if here in (before, after):
                continue
            turn = abs(
                (bearing_deg(*here, *after) - bearing_deg(*before, *here) + 180.0) % 360.0 - 180.0
            )
            if turn >= min_turn_deg:
                out.append(self._cumulative[i])
        return out


# A patrol loop through Shuangjing sub-district, Chaoyang, Beijing (WGS-84): north-west corner
# at Shuangjing bridge on the East 3rd Ring, east along Guangqu Road, south and back west on the
# streets south of it, through the residential blocks in the middle, and north on the 3rd Ring.
SHUANGJING_LOOP = Route(
    "shuangjing-loop",
    [
        (39.89350, 116.46180),  # Shuangjing bridge, E 3rd Ring x Guangqu Rd
        (39.89365, 116.46800),  # Guangqu Rd eastbound
        (39.89375, 116.47450),  # Guangqu Rd x Xidawang Rd
        (39.88980, 116.47460),  # Xidawang Rd southbound
        (39.88600, 116.47470),  # south-east corner
        (39.88590, 116.46900),  # westbound
        (39.88980, 116.46880),  # north through the residential blocks
        (39.88990, 116.46500),  # westbound on the middle street
        (39.88590, 116.46480),  # south again
        (39.88580, 116.46190),  # south-west corner at the 3rd Ring
        (39.88970, 116.46185),  # E 3rd Ring northbound
    ],
)

BUILTIN_ROUTES = {SHUANGJING_LOOP.name: SHUANGJING_LOOP}
