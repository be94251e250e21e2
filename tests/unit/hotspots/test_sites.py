from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hotspots.sites import KnownSite, Placed, match_sites


def site(i: int, cells: set[int], pollutant: str = "pm25", stratum: str = "all_day") -> KnownSite:
    return KnownSite(i, pollutant, stratum, frozenset(cells))


def spot(cells: set[int], pollutant: str = "pm25", stratum: str = "all_day") -> Placed:
    return Placed(pollutant, stratum, frozenset(cells))


def test_by_hand() -> None:
    known = [site(1, {1, 2, 3}), site(2, {10, 11}), site(3, {1, 2}, "no2")]
    new = [
        spot({2, 3, 4}),  # drifted a cell: still site 1
        spot({11, 12}),  # site 2
        spot({1, 2}, "no2", "lunch"),  # another stratum: a new site
        spot({50}),  # nowhere known: new
    ]
    assert match_sites(known, new) == [1, 2, None, None]


def test_two_hotspots_on_one_site_the_larger_overlap_keeps_it() -> None:
    known = [site(7, {1, 2, 3, 4})]
    assert match_sites(known, [spot({1}), spot({2, 3})]) == [None, 7]


cells = st.sets(st.integers(0, 30), min_size=1, max_size=6)
keys = st.tuples(st.sampled_from(["pm25", "no2"]), st.sampled_from(["all_day", "lunch"]))


@given(
    st.lists(st.tuples(cells, keys), max_size=8),
    st.lists(st.tuples(cells, keys), max_size=8),
)
def test_each_site_goes_once_and_only_to_the_same_pollutant_and_stratum_sharing_a_cell(
    known_spec: list[tuple[set[int], tuple[str, str]]],
    new_spec: list[tuple[set[int], tuple[str, str]]],
) -> None:
    known = [site(i + 1, c, *k) for i, (c, k) in enumerate(known_spec)]
    new = [spot(c, *k) for c, k in new_spec]
    out = match_sites(known, new)
    assert len(out) == len(new)
    taken = [s for s in out if s is not None]
    assert len(taken) == len(set(taken))
    by_id = {s.id: s for s in known}
    for placed, matched in zip(new, out, strict=True):
        if matched is None:
            # unmatched: every site it could have had went to another hotspot
            for s in known:
                if (s.pollutant, s.stratum) == (placed.pollutant, placed.stratum) and (
                    s.cells & placed.cells
                ):
                    assert s.id in taken
        else:
            s = by_id[matched]
            assert (s.pollutant, s.stratum) == (placed.pollutant, placed.stratum)
            assert s.cells & placed.cells


@given(st.lists(st.tuples(cells, keys), max_size=8))
def test_a_run_identical_to_the_sites_keeps_every_site(
    spec: list[tuple[set[int], tuple[str, str]]],
) -> None:
    # Sites of one key never share cells (they were one run's hotspots, which do not overlap).
    seen: dict[tuple[str, str], set[int]] = {}
    disjoint = []
    for c, k in spec:
        free = c - seen.setdefault(k, set())
        if free:
            seen[k] |= free
            disjoint.append((free, k))
    known = [site(i + 1, c, *k) for i, (c, k) in enumerate(disjoint)]
    assert match_sites(known, [spot(c, *k) for c, k in disjoint]) == [s.id for s in known]
