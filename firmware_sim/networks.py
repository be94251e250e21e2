"""Street networks and patrol routes of simulated worlds: pure geometry and walks on a graph.

A network is a set of junctions in local metres (east, north) around an origin (WGS-84), joined
by straight streets, each two-way or one-way. Shapes: a grid; a radial town of rings and spokes;
an irregular grid (jittered junctions, dropped streets, diagonals); two loops meeting in a
figure-eight, with cross streets and dead-end spurs. One-way streets are laid only where every
junction stays reachable from every other and a vehicle arriving at a junction can always go on
without turning back, so the only U-turns are at dead ends.

A patrol route is a closed walk through the network: it drives one-way streets their way only,
turns back only at a dead end (a spur is driven out and back) and ends where it started. A
fleet's routes overlap, and some two-way street is driven in both directions: opposite passes
of one source are what the analysis estimates sensor lag from.

Streets are arcs in both directions: arc `2 * street` drives a street from its `a` end to its `b`
end, arc `2 * street + 1` from `b` to `a`; a one-way street has only its forward arc.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge.errors import EnvpatrolError
from firmware_sim.geo import EARTH_RADIUS_M

__all__ = [
    "ROUTE_LENGTH_M",
    "SHAPES",
    "NetworkError",
    "PatrolRoute",
    "Point",
    "Street",
    "StreetDistances",
    "StreetNetwork",
    "StreetPoint",
    "build_network",
    "drivable_everywhere",
    "fleet_routes",
    "nearest_street_point",
    "patrol_route",
    "route_length_m",
    "route_nodes",
    "route_points",
    "route_polyline",
    "segment_distance_m",
    "street_distance_m",
    "to_local",
    "to_wgs84",
    "visits",
]

Point = tuple[float, float]  # (east, north) metres, or (lat, lon) where a name says so

SHAPES = ("grid", "radial", "irregular", "spurs")
MIN_STREET_M = 40.0  # the shapes lay no shorter street: junctions stay apart, also in a Route
ROUTE_LENGTH_M = (3000.0, 12000.0)  # a patrol loop a crew drives a few times in a shift


class NetworkError(EnvpatrolError, ValueError):
    """A network or route that cannot be built; `subject` names which."""


# ---------------------------------------------------------------------------------------------
# Local metres and WGS-84


def to_wgs84(origin: Point, east: float, north: float) -> Point:
    """(lat, lon) of the point `east`, `north` metres from `origin` (lat, lon): a local
    equirectangular projection, exact enough over a few kilometres."""
    lat0, lon0 = origin
    lat = lat0 + math.degrees(north / EARTH_RADIUS_M)
    lon = lon0 + math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
    return lat, lon


def to_local(origin: Point, lat: float, lon: float) -> Point:
    """(east, north) metres of (lat, lon) from `origin`: the inverse of `to_wgs84`."""
    lat0, lon0 = origin
    north = math.radians(lat - lat0) * EARTH_RADIUS_M
    east = math.radians(lon - lon0) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    return east, north


def segment_distance_m(p: Point, a: Point, b: Point) -> float:
    """Distance in a plane from p to the segment a-b."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    f = 0.0 if length2 == 0 else ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2
    f = min(1.0, max(0.0, f))
    return math.hypot(p[0] - a[0] - f * dx, p[1] - a[1] - f * dy)


# ---------------------------------------------------------------------------------------------
# The network


@dataclass(frozen=True, slots=True)
class Street:
    """A straight street between junctions `a` and `b`; a one-way street is driven a -> b."""

    a: int
    b: int
    oneway: bool = False


@dataclass(frozen=True, slots=True)
class StreetPoint:
    """A place on a street: `offset_m` metres from its `a` end."""

    street: int
    offset_m: float


@dataclass(frozen=True, slots=True)
class StreetNetwork:
    shape: str
    origin: Point  # (lat, lon) of the local (0, 0)
    nodes: tuple[Point, ...]  # junctions (and bends), (east, north) metres
    streets: tuple[Street, ...]

    def __post_init__(self) -> None:
        pairs: set[tuple[int, int]] = set()
        for i, s in enumerate(self.streets):
            if not (0 <= s.a < len(self.nodes) and 0 <= s.b < len(self.nodes)) or s.a == s.b:
                raise NetworkError(f"streets[{i}]", f"joins {s.a} and {s.b}: not two junctions")
            pair = (min(s.a, s.b), max(s.a, s.b))
            if pair in pairs:
                raise NetworkError(f"streets[{i}]", "a second street between the same junctions")
            pairs.add(pair)

    def length_m(self, street: int) -> float:
        s = self.streets[street]
        (ax, ay), (bx, by) = self.nodes[s.a], self.nodes[s.b]
        return math.hypot(bx - ax, by - ay)

    @property
    def total_length_m(self) -> float:
        return math.fsum(self.length_m(i) for i in range(len(self.streets)))

    def degrees(self) -> list[int]:
        """How many streets meet at each junction (1: a dead end)."""
        out = [0] * len(self.nodes)
        for s in self.streets:
            out[s.a] += 1
            out[s.b] += 1
        return out

    def point_on(self, place: StreetPoint) -> Point:
        s = self.streets[place.street]
        (ax, ay), (bx, by) = self.nodes[s.a], self.nodes[s.b]
        f = place.offset_m / self.length_m(place.street)
        return ax + (bx - ax) * f, ay + (by - ay) * f

    def direction(self, street: int) -> Point:
        """The unit vector from the street's `a` end to its `b` end."""
        s = self.streets[street]
        (ax, ay), (bx, by) = self.nodes[s.a], self.nodes[s.b]
        length = self.length_m(street)
        return (bx - ax) / length, (by - ay) / length

    def wgs84(self, point: Point) -> Point:
        """(lat, lon) of a local point, rounded to 1e-7 degrees (about a centimetre)."""
        lat, lon = to_wgs84(self.origin, *point)
        return round(lat, 7), round(lon, 7)


class _Graph:
    """A network's arcs and adjacency, built once per use."""

    def __init__(self, network: StreetNetwork) -> None:
        self.network = network
        n = len(network.nodes)
        self.length = [network.length_m(i) for i in range(len(network.streets))]
        self.tail: list[int] = []
        self.head: list[int] = []
        self.ok: list[bool] = []
        self.out: list[list[int]] = [[] for _ in range(n)]
        self.into: list[list[int]] = [[] for _ in range(n)]
        for i, s in enumerate(network.streets):
            for arc, (t, h) in ((2 * i, (s.a, s.b)), (2 * i + 1, (s.b, s.a))):
                self.tail.append(t)
                self.head.append(h)
                allowed = arc % 2 == 0 or not s.oneway
                self.ok.append(allowed)
                if allowed:
                    self.out[t].append(arc)
                    self.into[h].append(arc)
        self.degree = network.degrees()

    def arc_length(self, arc: int) -> float:
        return self.length[arc // 2]

    def onward(self, arc: int) -> list[int]:
        """The arcs a vehicle arriving by `arc` may take next: any but straight back, unless
        back is the only way (a dead end)."""
        here = self.out[self.head[arc]]
        return [c for c in here if c != arc ^ 1] or here

    def distances_to(self, target: int) -> list[float]:
        """Shortest driving distance from every junction to `target`."""
        dist = [math.inf] * len(self.out)
        dist[target] = 0.0
        heap = [(0.0, target)]
        while heap:
            d, v = heapq.heappop(heap)
            if d > dist[v]:
                continue
            for arc in self.into[v]:
                u = self.tail[arc]
                nd = d + self.arc_length(arc)
                if nd < dist[u]:
                    dist[u] = nd
                    heapq.heappush(heap, (nd, u))
        return dist

    def closing(self, last: int, start: int, first: int) -> list[int] | None:
        """The shortest continuation after arc `last` that arrives at `start` by an arc from
        which `first` is not a U-turn (so the loop can be driven lap after lap)."""
        if self.head[last] == start and last != first ^ 1:
            return []
        dist = {last: 0.0}
        prev: dict[int, int] = {}
        heap = [(0.0, last)]
        while heap:
            d, arc = heapq.heappop(heap)
            if d > dist[arc]:
                continue
            if arc != last and self.head[arc] == start and arc != first ^ 1:
                path = [arc]
                while prev[path[-1]] != last:
                    path.append(prev[path[-1]])
                return path[::-1]
            for c in self.onward(arc):
                nd = d + self.arc_length(c)
                if nd < dist.get(c, math.inf):
                    dist[c] = nd
                    prev[c] = arc
                    heapq.heappush(heap, (nd, c))
        return None


def drivable_everywhere(network: StreetNetwork) -> bool:
    """Every junction reachable from every other, and at every junction that is not a dead end
    a vehicle can go on without turning back."""
    g = _Graph(network)
    n = len(network.nodes)
    if n == 0:
        return False
    for arcs_of, end in ((g.out, g.head), (g.into, g.tail)):
        seen = [False] * n
        seen[0] = True
        stack = [0]
        while stack:
            v = stack.pop()
            for arc in arcs_of[v]:
                w = end[arc]
                if not seen[w]:
                    seen[w] = True
                    stack.append(w)
        if not all(seen):
            return False
    return all(
        any(c != arc ^ 1 for c in g.out[v])
        for v in range(n)
        if g.degree[v] >= 2
        for arc in g.into[v]
    )


# ---------------------------------------------------------------------------------------------
# Shapes


def build_network(shape: str, rng: random.Random, origin: Point) -> StreetNetwork:
    """A street network of `shape` (one of SHAPES), drawn from `rng`, around `origin` (lat, lon)."""
    makers = {"grid": _grid, "radial": _radial, "irregular": _irregular, "spurs": _figure_eight}
    maker = makers.get(shape)
    if maker is None:
        raise NetworkError("shape", f"unknown shape {shape!r} (known: {', '.join(SHAPES)})")
    nodes, streets, groups = maker(rng)
    streets = _with_oneways(shape, origin, nodes, streets, groups)
    return StreetNetwork(shape, origin, tuple(nodes), tuple(streets))


_Layout = tuple[list[Point], list[Street], list[list[tuple[int, bool]]]]


def _with_oneways(
    shape: str,
    origin: Point,
    nodes: list[Point],
    streets: list[Street],
    groups: list[list[tuple[int, bool]]],
) -> list[Street]:
    """Each group of (street, forward) made one-way, group by group, keeping only the groups
    after which the network is still drivable everywhere (a one-way street pair or a whole
    one-way line is laid as one)."""
    for group in groups:
        trial = list(streets)
        for i, forward in group:
            s = trial[i]
            trial[i] = Street(s.a, s.b, True) if forward else Street(s.b, s.a, True)
        if drivable_everywhere(StreetNetwork(shape, origin, tuple(nodes), tuple(trial))):
            streets = trial
    return streets


def _axis(rng: random.Random, count: int, low: float, high: float) -> list[float]:
    """`count` street positions with spacings drawn from [low, high], centred on 0."""
    xs = [0.0]
    for _ in range(count - 1):
        xs.append(xs[-1] + rng.uniform(low, high))
    middle = xs[-1] / 2
    return [x - middle for x in xs]


def _grid(rng: random.Random) -> _Layout:
    nx, ny = rng.randint(4, 7), rng.randint(4, 6)
    xs, ys = _axis(rng, nx, 160.0, 300.0), _axis(rng, ny, 160.0, 300.0)
    nodes = [(x, y) for x in xs for y in ys]
    streets: list[Street] = []
    lines: list[list[int]] = []
    for i in range(nx):  # north-south streets
        lines.append([])
        for j in range(ny - 1):
            lines[-1].append(len(streets))
            streets.append(Street(i * ny + j, i * ny + j + 1))
    for j in range(ny):  # east-west streets
        lines.append([])
        for i in range(nx - 1):
            lines[-1].append(len(streets))
            streets.append(Street(i * ny + j, (i + 1) * ny + j))
    inner = [line for k, line in enumerate(lines) if k not in (0, nx - 1, nx, nx + ny - 1)]
    groups = []
    for line in inner:
        if rng.random() < 0.3:
            forward = rng.random() < 0.5
            groups.append([(s, forward) for s in line])
    return nodes, streets, groups


def _radial(rng: random.Random) -> _Layout:
    spokes, rings = rng.randint(5, 8), rng.randint(2, 3)
    turn = rng.uniform(0.0, 2 * math.pi)
    angles = [turn + 2 * math.pi * k / spokes + rng.uniform(-0.12, 0.12) for k in range(spokes)]
    radii = [rng.uniform(180.0, 280.0)]
    for _ in range(rings - 1):
        radii.append(radii[-1] + rng.uniform(180.0, 320.0))
    nodes: list[Point] = [(0.0, 0.0)]
    at: list[list[int]] = []  # at[ring][spoke]: the junction of a ring and a spoke
    for radius in radii:
        at.append([])
        for a in angles:
            at[-1].append(len(nodes))
            nodes.append((radius * math.cos(a), radius * math.sin(a)))
    streets: list[Street] = []
    groups: list[list[tuple[int, bool]]] = []
    for r, radius in enumerate(radii):
        ring = _ring(nodes, streets, at[r], angles, radius)
        if rng.random() < 0.35:
            forward = rng.random() < 0.5
            groups.append([(s, forward) for s in ring])
    to_centre = set(rng.sample(range(spokes), rng.randint(3, spokes)))
    for k, a in enumerate(angles):  # spokes, outwards
        spoke: list[int] = []
        if k in to_centre:
            spoke.append(len(streets))
            streets.append(Street(0, at[0][k]))
        for r in range(rings - 1):
            spoke.append(len(streets))
            streets.append(Street(at[r][k], at[r + 1][k]))
        if rng.random() < 0.25:  # an arterial leaving town: a dead end for the patrol
            length = radii[-1] + rng.uniform(120.0, 280.0)
            nodes.append((length * math.cos(a), length * math.sin(a)))
            streets.append(Street(at[-1][k], len(nodes) - 1))
        if rng.random() < 0.2:
            forward = rng.random() < 0.5
            groups.append([(s, forward) for s in spoke])
    return nodes, streets, groups


def _ring(
    nodes: list[Point], streets: list[Street], at: list[int], angles: list[float], radius: float
) -> list[int]:
    """A ring road through the junctions `at` (at `angles`), counter-clockwise, bent every
    ~120 m; the streets it added."""
    added = []
    for k in range(len(at)):
        a0 = angles[k]
        a1 = angles[(k + 1) % len(at)] + (2 * math.pi if k == len(at) - 1 else 0.0)
        pieces = max(1, math.ceil(radius * (a1 - a0) / 120.0))
        prev = at[k]
        for p in range(1, pieces + 1):
            if p == pieces:
                nxt = at[(k + 1) % len(at)]
            else:
                a = a0 + (a1 - a0) * p / pieces
                nxt = len(nodes)
                nodes.append((radius * math.cos(a), radius * math.sin(a)))
            added.append(len(streets))
            streets.append(Street(prev, nxt))
            prev = nxt
    return added


def _connected(n: int, pairs: Sequence[tuple[int, int]]) -> bool:
    adjacent: list[list[int]] = [[] for _ in range(n)]
    for a, b in pairs:
        adjacent[a].append(b)
        adjacent[b].append(a)
    seen = {0}
    stack = [0]
    while stack:
        for w in adjacent[stack.pop()]:
            if w not in seen:
                seen.add(w)
                stack.append(w)
    return len(seen) == n


def _irregular(rng: random.Random) -> _Layout:
    nx, ny = rng.randint(4, 7), rng.randint(4, 6)
    sx, sy = rng.uniform(170.0, 280.0), rng.uniform(170.0, 280.0)
    nodes = [
        (
            (i - (nx - 1) / 2) * sx + rng.uniform(-0.15, 0.15) * sx,
            (j - (ny - 1) / 2) * sy + rng.uniform(-0.15, 0.15) * sy,
        )
        for i in range(nx)
        for j in range(ny)
    ]
    pairs: list[tuple[int, int]] = []
    for i in range(nx):
        for j in range(ny):
            if j + 1 < ny:
                pairs.append((i * ny + j, i * ny + j + 1))
            if i + 1 < nx:
                pairs.append((i * ny + j, (i + 1) * ny + j))
    for pair in list(pairs):  # dropped streets: blocks merge, dead ends appear
        if rng.random() < 0.15:
            kept = [p for p in pairs if p != pair]
            if _connected(len(nodes), kept):
                pairs = kept
    blocks = [(i, j) for i in range(nx - 1) for j in range(ny - 1)]
    rng.shuffle(blocks)
    for i, j in blocks[: rng.randint(2, 5)]:  # diagonal streets across a block
        if rng.random() < 0.5:
            pairs.append((i * ny + j, (i + 1) * ny + j + 1))
        else:
            pairs.append(((i + 1) * ny + j, i * ny + j + 1))
    streets = [Street(a, b) for a, b in pairs]
    groups = [[(s, rng.random() < 0.5)] for s in range(len(streets)) if rng.random() < 0.2]
    return nodes, streets, groups


def _crosses(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """Whether segments p1-p2 and q1-q2 cross (touching at an end does not count)."""

    def side(a: Point, b: Point, c: Point) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = side(q1, q2, p1), side(q1, q2, p2)
    d3, d4 = side(p1, p2, q1), side(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def _figure_eight(rng: random.Random) -> _Layout:
    nodes: list[Point] = [(0.0, 0.0)]  # where the two loops cross
    streets: list[Street] = []
    groups: list[list[tuple[int, bool]]] = []
    roots: list[tuple[int, Point]] = []  # loop junctions a spur may leave, and outwards
    for side in (-1.0, 1.0):
        a, b = rng.uniform(250.0, 450.0), rng.uniform(200.0, 380.0)
        m = rng.randint(6, 10)
        ring = [0]
        for k in range(1, m):
            theta = 2 * math.pi * k / m + rng.uniform(-0.1, 0.1) * 2 * math.pi / m
            f = rng.uniform(0.9, 1.1)
            x, y = side * a - side * a * math.cos(theta) * f, b * math.sin(theta) * f
            ring.append(len(nodes))
            nodes.append((x, y))
            if m / 6 <= k <= 5 * m / 6:  # away from the crossing
                roots.append((len(nodes) - 1, (x - side * a, y)))
        loop = []
        for k in range(m):
            loop.append(len(streets))
            streets.append(Street(ring[k], ring[(k + 1) % m]))
        if rng.random() < 0.2:  # a one-way loop
            forward = rng.random() < 0.5
            groups.append([(s, forward) for s in loop])
        chords = sorted(rng.sample(range(1, m // 2), min(rng.randint(0, 2), m // 2 - 1)))
        for k in chords:  # cross streets from the upper half of the loop to the lower
            if m - 2 * k > 1:
                if rng.random() < 0.5:
                    groups.append([(len(streets), rng.random() < 0.5)])
                streets.append(Street(ring[k], ring[m - k]))
    rotation = rng.uniform(0.0, 2 * math.pi)
    c, s = math.cos(rotation), math.sin(rotation)
    nodes = [(x * c - y * s, x * s + y * c) for x, y in nodes]
    roots = [(i, (x * c - y * s, x * s + y * c)) for i, (x, y) in roots]
    for _ in range(rng.randint(2, 4)):
        _spur(rng, nodes, streets, roots)
    return nodes, streets, groups


def _spur(
    rng: random.Random, nodes: list[Point], streets: list[Street], roots: list[tuple[int, Point]]
) -> None:
    """A dead-end street of 150-380 m (bent once when long) leaving a loop outwards, where it
    stays clear of the other streets; none if ten tries find no room."""
    for _ in range(10):
        root, (ox, oy) = rng.choice(roots)
        heading = math.atan2(oy, ox) + rng.uniform(-0.45, 0.45)
        length = rng.uniform(150.0, 380.0)
        bends = [heading] if length <= 250.0 else [heading, heading + rng.uniform(-0.35, 0.35)]
        path = [nodes[root]]
        for bend in bends:
            step = length / len(bends)
            x, y = path[-1]
            path.append((x + step * math.cos(bend), y + step * math.sin(bend)))
        if _clear(nodes, streets, path):
            prev = root
            for point in path[1:]:
                nodes.append(point)
                streets.append(Street(prev, len(nodes) - 1))
                prev = len(nodes) - 1
            return


def _clear(nodes: list[Point], streets: list[Street], path: list[Point]) -> bool:
    """A new spur along `path` (from a loop junction) crosses no street, and its bend and end
    keep 80 m from every street."""
    for p, q in itertools.pairwise(path):
        for street in streets:
            a, b = nodes[street.a], nodes[street.b]
            if _crosses(p, q, a, b):
                return False
    for point in path[1:]:
        for street in streets:
            a, b = nodes[street.a], nodes[street.b]
            if segment_distance_m(point, a, b) < 80.0:
                return False
    return True


# ---------------------------------------------------------------------------------------------
# Patrol routes


@dataclass(frozen=True, slots=True)
class PatrolRoute:
    """A closed walk: consecutive arcs meet, and the last ends where the first starts."""

    name: str
    arcs: tuple[int, ...]


def route_nodes(network: StreetNetwork, route: PatrolRoute) -> list[int]:
    """The junctions the walk passes, the start repeated at the end."""
    g = _Graph(network)
    return [g.tail[route.arcs[0]], *(g.head[a] for a in route.arcs)]


def route_polyline(network: StreetNetwork, route: PatrolRoute) -> list[Point]:
    """The walk in local metres, closed (the first point repeated at the end)."""
    return [network.nodes[v] for v in route_nodes(network, route)]


def route_points(network: StreetNetwork, route: PatrolRoute) -> tuple[Point, ...]:
    """The walk's waypoints (lat, lon) for a closed `Route` (which joins the last to the first)."""
    return tuple(network.wgs84(network.nodes[v]) for v in route_nodes(network, route)[:-1])


def route_length_m(network: StreetNetwork, route: PatrolRoute) -> float:
    return math.fsum(network.length_m(a // 2) for a in route.arcs)


def _weight(arc: int, streets: set[int], arcs: set[int], fleet: Mapping[int, int]) -> float:
    """How much a walk wants to take `arc` next: new streets first, then streets other routes
    drove the other way (opposite passes), little of what it drove already."""
    w = 1.0
    if arc // 2 not in streets:
        w *= 4.0
    if arc in arcs:
        w *= 0.25
    elif arc ^ 1 in arcs or arc ^ 1 in fleet:
        w *= 3.0
    if fleet and arc not in fleet and arc ^ 1 not in fleet:
        w *= 2.0
    return w


def _walk(
    g: _Graph,
    rng: random.Random,
    name: str,
    target_m: float,
    fleet: Mapping[int, int],
) -> PatrolRoute:
    """A closed walk of about `target_m` from a random junction: a weighted random walk that
    never turns back but at a dead end, until the way home would make up the length, then the
    shortest way home (arriving so that the next lap can begin without a U-turn)."""
    starts = [v for v in range(len(g.out)) if g.degree[v] >= 2 and g.out[v]]
    for _ in range(40):
        start = rng.choice(starts)
        back = g.distances_to(start)
        first = rng.choice(g.out[start])
        arcs = [first]
        streets, seen = {first // 2}, {first}
        walked = g.arc_length(first)
        while walked + back[g.head[arcs[-1]]] < target_m:
            options = g.onward(arcs[-1])
            weights = [_weight(c, streets, seen, fleet) for c in options]
            arc = rng.choices(options, weights)[0]
            arcs.append(arc)
            streets.add(arc // 2)
            seen.add(arc)
            walked += g.arc_length(arc)
        closing = g.closing(arcs[-1], start, first)
        if closing is None:
            continue
        arcs.extend(closing)
        total = math.fsum(g.arc_length(a) for a in arcs)
        if ROUTE_LENGTH_M[0] <= total <= ROUTE_LENGTH_M[1]:
            return PatrolRoute(name, tuple(arcs))
    raise NetworkError(name, f"no closed walk of about {target_m:.0f} m found")


def _length_band(network: StreetNetwork) -> tuple[float, float]:
    """Target lengths for this network: within ROUTE_LENGTH_M, and not many times its size."""
    low, high = ROUTE_LENGTH_M
    return low + 200.0, min(high - 500.0, max(low + 1000.0, 1.3 * network.total_length_m))


def patrol_route(
    network: StreetNetwork,
    rng: random.Random,
    name: str,
    target_m: float | None = None,
    *,
    fleet: Mapping[int, int] | None = None,
) -> PatrolRoute:
    """A closed walk of about `target_m` (drawn when None) through the network. `fleet` counts
    the arcs other routes drive: the walk prefers streets they left out and streets they drove
    only the other way."""
    band = _length_band(network)
    target = rng.uniform(*band) if target_m is None else target_m
    return _walk(_Graph(network), rng, name, target, fleet or {})


def fleet_routes(
    network: StreetNetwork, rng: random.Random, names: Sequence[Sequence[str]]
) -> tuple[tuple[PatrolRoute, ...], ...]:
    """Routes for a fleet, `names[v]` naming vehicle v's routes (one per day's variation).

    Every route differs from every other; with two vehicles or more, each vehicle's routes share
    streets with the other vehicles'; and some two-way street is driven in both directions.
    """
    if not names or not all(names):
        raise NetworkError("names", "every vehicle needs at least one route")
    g = _Graph(network)
    band = _length_band(network)
    for _ in range(30):
        fleet: dict[int, int] = {}
        out: list[tuple[PatrolRoute, ...]] = []
        for vehicle in names:
            routes = []
            for name in vehicle:
                route = _walk(g, rng, name, rng.uniform(*band), fleet)
                routes.append(route)
                for arc in route.arcs:
                    fleet[arc] = fleet.get(arc, 0) + 1
            out.append(tuple(routes))
        if _fleet_ok(out, fleet):
            return tuple(out)
    raise NetworkError("fleet", "no set of overlapping, distinct routes found")


def _fleet_ok(fleet: Sequence[Sequence[PatrolRoute]], driven: Mapping[int, int]) -> bool:
    shapes = [frozenset(r.arcs) for routes in fleet for r in routes]
    if len(set(shapes)) != len(shapes):
        return False
    if len(fleet) > 1:
        streets = [{a // 2 for r in routes for a in r.arcs} for routes in fleet]
        for i, mine in enumerate(streets):
            others = set().union(*(s for j, s in enumerate(streets) if j != i))
            if not mine & others:
                return False
    return any(arc % 2 == 0 and arc + 1 in driven for arc in driven)


# ---------------------------------------------------------------------------------------------
# Places along streets


def nearest_street_point(network: StreetNetwork, point: Point) -> tuple[StreetPoint, float]:
    """The place on the streets nearest to `point`, and the distance to it."""
    best: tuple[StreetPoint, float] | None = None
    for i, s in enumerate(network.streets):
        a, b = network.nodes[s.a], network.nodes[s.b]
        length = network.length_m(i)
        dx, dy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
        t = min(length, max(0.0, (point[0] - a[0]) * dx + (point[1] - a[1]) * dy))
        d = math.hypot(point[0] - a[0] - t * dx, point[1] - a[1] - t * dy)
        if best is None or d < best[1]:
            best = (StreetPoint(i, t), d)
    if best is None:
        raise NetworkError("network", "has no streets")
    return best


class StreetDistances:
    """Distances along the streets from one place `p` to any other, in either direction of
    travel (as a pedestrian measures them, one-way streets or not)."""

    def __init__(self, network: StreetNetwork, p: StreetPoint) -> None:
        self.network = network
        self.p = p
        n = len(network.nodes)
        adjacent: list[list[tuple[int, float]]] = [[] for _ in range(n)]
        for i, s in enumerate(network.streets):
            length = network.length_m(i)
            adjacent[s.a].append((s.b, length))
            adjacent[s.b].append((s.a, length))
        sp = network.streets[p.street]
        dist = [math.inf] * n
        dist[sp.a] = p.offset_m
        dist[sp.b] = min(dist[sp.b], network.length_m(p.street) - p.offset_m)
        heap = [(dist[sp.a], sp.a), (dist[sp.b], sp.b)]
        while heap:
            d, v = heapq.heappop(heap)
            if d > dist[v]:
                continue
            for w, length in adjacent[v]:
                if d + length < dist[w]:
                    dist[w] = d + length
                    heapq.heappush(heap, (d + length, w))
        self.to_node = dist

    def __call__(self, q: StreetPoint) -> float:
        sq = self.network.streets[q.street]
        rest = self.network.length_m(q.street) - q.offset_m
        best = min(self.to_node[sq.a] + q.offset_m, self.to_node[sq.b] + rest)
        if q.street == self.p.street:
            best = min(best, abs(self.p.offset_m - q.offset_m))
        return best


def street_distance_m(network: StreetNetwork, p: StreetPoint, q: StreetPoint) -> float:
    """The shortest distance from p to q along the streets, in either direction of travel."""
    return StreetDistances(network, p)(q)


def visits(polyline: Sequence[Point], targets: Sequence[Point], radius_m: float) -> int:
    """How many separate times a vehicle driving the closed `polyline` once (first point repeated
    at the end) comes within `radius_m` of any of `targets`: a source's passes per lap."""
    spans: list[tuple[float, float]] = []
    along = 0.0
    for p, q in itertools.pairwise(polyline):
        length = math.hypot(q[0] - p[0], q[1] - p[1])
        if length == 0:
            continue
        dx, dy = (q[0] - p[0]) / length, (q[1] - p[1]) / length
        west, east = min(p[0], q[0]) - radius_m, max(p[0], q[0]) + radius_m
        south, north = min(p[1], q[1]) - radius_m, max(p[1], q[1]) + radius_m
        for cx, cy in targets:
            if not (west <= cx <= east and south <= cy <= north):
                continue
            # |p + s d - c| <= r, solved for s along the segment
            ex, ey = p[0] - cx, p[1] - cy
            half_b = ex * dx + ey * dy
            disc = half_b * half_b - (ex * ex + ey * ey - radius_m * radius_m)
            if disc < 0:
                continue
            root = math.sqrt(disc)
            s0, s1 = max(0.0, -half_b - root), min(length, -half_b + root)
            if s0 <= s1:
                spans.append((along + s0, along + s1))
        along += length
    if not spans:
        return 0
    spans.sort()
    runs = [list(spans[0])]
    for s0, s1 in spans[1:]:
        if s0 <= runs[-1][1] + 1.0:
            runs[-1][1] = max(runs[-1][1], s1)
        else:
            runs.append([s0, s1])
    if len(runs) > 1 and runs[0][0] <= 1.0 and runs[-1][1] >= along - 1.0:
        return len(runs) - 1  # the lap's end runs on into its start
    return len(runs)
