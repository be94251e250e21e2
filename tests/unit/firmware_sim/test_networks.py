"""Street networks and patrol routes: every shape drivable, routes that are closed walks along the
streets keeping to one-way rules, fleets whose routes overlap and drive streets both ways."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.networks import (
    MIN_STREET_M,
    ROUTE_LENGTH_M,
    SHAPES,
    NetworkError,
    PatrolRoute,
    Street,
    StreetNetwork,
    StreetPoint,
    build_network,
    drivable_everywhere,
    fleet_routes,
    nearest_street_point,
    patrol_route,
    route_length_m,
    route_nodes,
    route_points,
    route_polyline,
    street_distance_m,
    to_local,
    to_wgs84,
    visits,
)
from firmware_sim.route import Route

ORIGIN = (39.893, 116.462)
shapes = st.sampled_from(SHAPES)
seeds = st.integers(0, 2**32)


def network(shape: str, seed: int) -> StreetNetwork:
    return build_network(shape, random.Random(f"{shape}:{seed}"), ORIGIN)


def ends(net: StreetNetwork, arc: int) -> tuple[int, int]:
    s = net.streets[arc // 2]
    return (s.a, s.b) if arc % 2 == 0 else (s.b, s.a)


def assert_closed_walk(net: StreetNetwork, route: PatrolRoute) -> None:
    degrees = net.degrees()
    for arc in route.arcs:  # one-way streets only their way
        assert arc % 2 == 0 or not net.streets[arc // 2].oneway
    for a, b in itertools.pairwise((*route.arcs, route.arcs[0])):
        assert ends(net, a)[1] == ends(net, b)[0]  # connected, and back at the start
        if b == a ^ 1:  # turning back only at a dead end
            assert degrees[ends(net, a)[1]] == 1


@settings(max_examples=40, deadline=None)
@given(shapes, seeds)
def test_every_shape_is_drivable_from_anywhere_to_anywhere(shape: str, seed: int) -> None:
    net = network(shape, seed)
    assert net.shape == shape
    assert drivable_everywhere(net)
    assert min(net.length_m(i) for i in range(len(net.streets))) >= MIN_STREET_M
    assert any(not s.oneway for s in net.streets)


def test_the_shapes_have_their_features() -> None:
    nets = {shape: [network(shape, seed) for seed in range(20)] for shape in SHAPES}
    for shape in SHAPES:  # one-way streets appear in every shape
        assert any(any(s.oneway for s in n.streets) for n in nets[shape]), shape
    assert all(1 in n.degrees() for n in nets["spurs"])  # dead-end spurs
    assert all(max(n.degrees()) >= 4 for n in nets["spurs"])  # the figure-eight's crossing
    assert all(max(n.degrees()) >= 3 for n in nets["radial"])


@settings(max_examples=40, deadline=None)
@given(shapes, seeds)
def test_a_patrol_route_is_a_closed_walk_along_the_streets(shape: str, seed: int) -> None:
    net = network(shape, seed)
    route = patrol_route(net, random.Random(seed), "r")
    assert_closed_walk(net, route)
    assert ROUTE_LENGTH_M[0] <= route_length_m(net, route) <= ROUTE_LENGTH_M[1]


@settings(max_examples=25, deadline=None)
@given(shapes, seeds)
def test_a_route_drives_as_a_simulator_route_of_the_same_length(shape: str, seed: int) -> None:
    net = network(shape, seed)
    walk = patrol_route(net, random.Random(seed), "r")
    points = route_points(net, walk)
    route = Route("r", list(points), closed=True)
    assert route.length_m == pytest.approx(route_length_m(net, walk), rel=0.002)
    nodes = route_nodes(net, walk)
    assert nodes[0] == nodes[-1]
    for (lat, lon), node in zip(points, nodes, strict=False):  # waypoints are the junctions
        east, north = to_local(ORIGIN, lat, lon)
        assert math.dist((east, north), net.nodes[node]) < 0.05


@settings(max_examples=25, deadline=None)
@given(shapes, seeds)
def test_a_fleet_overlaps_and_drives_some_street_both_ways(shape: str, seed: int) -> None:
    net = network(shape, seed)
    fleet = fleet_routes(net, random.Random(seed), [["a", "b"], ["c"], ["d"]])
    assert [[r.name for r in routes] for routes in fleet] == [["a", "b"], ["c"], ["d"]]
    every = [r for routes in fleet for r in routes]
    for r in every:
        assert_closed_walk(net, r)
    assert len({frozenset(r.arcs) for r in every}) == len(every)  # all different
    streets = [{a // 2 for r in routes for a in r.arcs} for routes in fleet]
    for i, mine in enumerate(streets):
        assert any(mine & other for j, other in enumerate(streets) if j != i)
    driven = {a for r in every for a in r.arcs}
    assert any(a % 2 == 0 and a + 1 in driven for a in driven)


def test_one_vehicle_with_one_route_drives_a_street_both_ways() -> None:
    for seed in range(30):
        for shape in SHAPES:
            net = network(shape, seed)
            ((route,),) = fleet_routes(net, random.Random(seed), [["only"]])
            assert any(a % 2 == 0 and a + 1 in route.arcs for a in route.arcs)


@settings(max_examples=20, deadline=None)
@given(shapes, seeds)
def test_the_same_seed_gives_the_same_network_and_routes(shape: str, seed: int) -> None:
    def draw() -> tuple[StreetNetwork, tuple[tuple[PatrolRoute, ...], ...]]:
        rng = random.Random(seed)
        net = build_network(shape, rng, ORIGIN)
        return net, fleet_routes(net, rng, [["a"], ["b", "c"]])

    assert draw() == draw()


def test_different_seeds_give_different_networks() -> None:
    for shape in SHAPES:
        assert len({network(shape, seed) for seed in range(10)}) == 10


def test_a_spur_is_driven_out_and_back() -> None:
    seen = 0
    for seed in range(20):
        net = network("spurs", seed)
        dead_ends = {v for v, d in enumerate(net.degrees()) if d == 1}
        for route in fleet_routes(net, random.Random(seed), [["a"], ["b"]]):
            nodes = route_nodes(net, route[0])
            for before, here, after in zip(nodes, nodes[1:], nodes[2:], strict=False):
                if here in dead_ends:
                    assert before == after
                    seen += 1
    assert seen > 0


@given(
    st.floats(-60, 60),
    st.floats(-179, 179),
    st.floats(-20_000, 20_000),
    st.floats(-20_000, 20_000),
)
def test_local_metres_and_wgs84_are_inverse(
    lat: float, lon: float, east: float, north: float
) -> None:
    there = to_wgs84((lat, lon), east, north)
    back = to_local((lat, lon), *there)
    assert back == pytest.approx((east, north), abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(shapes, seeds, st.data())
def test_distances_along_the_streets(shape: str, seed: int, data: st.DataObject) -> None:
    net = network(shape, seed)

    def place() -> StreetPoint:
        street = data.draw(st.integers(0, len(net.streets) - 1))
        return StreetPoint(street, data.draw(st.floats(0, net.length_m(street))))

    p, q = place(), place()
    d = street_distance_m(net, p, q)
    assert d == pytest.approx(street_distance_m(net, q, p), abs=1e-6)
    assert d >= math.dist(net.point_on(p), net.point_on(q)) - 1e-6
    assert street_distance_m(net, p, p) == 0
    found, off = nearest_street_point(net, net.point_on(p))
    assert off < 1e-6
    assert math.dist(net.point_on(found), net.point_on(p)) < 1e-6


def test_visits_count_separate_passes_of_a_lap() -> None:
    square = [(0.0, 0.0), (400.0, 0.0), (400.0, 400.0), (0.0, 400.0), (0.0, 0.0)]
    assert visits(square, [(200.0, 10.0)], 50.0) == 1
    assert visits(square, [(200.0, 200.0)], 50.0) == 0
    assert visits(square, [(0.0, 0.0)], 50.0) == 1  # the lap's end runs on into its start
    assert visits(square, [(200.0, 10.0), (210.0, 10.0)], 50.0) == 1  # one place, two points
    spur = [(0.0, 0.0), (300.0, 0.0), (0.0, 0.0)]
    assert visits(spur, [(150.0, 0.0)], 50.0) == 2  # out, and back
    assert visits(spur, [(300.0, 0.0)], 50.0) == 1  # the turning point: one visit


@settings(max_examples=30, deadline=None)
@given(shapes, seeds, st.data())
def test_two_laps_visit_twice_as_often(shape: str, seed: int, data: st.DataObject) -> None:
    net = network(shape, seed)
    lap = route_polyline(net, patrol_route(net, random.Random(seed), "r"))
    target = (data.draw(st.floats(-800, 800)), data.draw(st.floats(-800, 800)))
    assert visits(lap + lap[1:], [target], 50.0) == 2 * visits(lap, [target], 50.0)


def test_a_network_refuses_streets_that_are_not_streets() -> None:
    with pytest.raises(NetworkError, match="streets\\[0\\]"):
        StreetNetwork("grid", ORIGIN, ((0.0, 0.0), (100.0, 0.0)), (Street(0, 0),))
    with pytest.raises(NetworkError, match="same junctions"):
        StreetNetwork(
            "grid", ORIGIN, ((0.0, 0.0), (100.0, 0.0)), (Street(0, 1), Street(1, 0, True))
        )
    with pytest.raises(NetworkError, match="shape"):
        build_network("hexagonal", random.Random(1), ORIGIN)
    with pytest.raises(NetworkError, match="names"):
        fleet_routes(network("grid", 1), random.Random(1), [[]])


def test_a_one_way_dead_end_is_not_drivable() -> None:
    nodes = ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0), (-100.0, 0.0))
    ring = (Street(0, 1), Street(1, 2), Street(2, 3), Street(3, 0))
    assert drivable_everywhere(StreetNetwork("grid", ORIGIN, nodes, (*ring, Street(0, 4))))
    assert not drivable_everywhere(
        StreetNetwork("grid", ORIGIN, nodes, (*ring, Street(0, 4, oneway=True)))
    )
