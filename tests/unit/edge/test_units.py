"""Energy means of decibel levels: edge.units' rule and its array form in hotspots.analysis."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.units import energy_mean, energy_sum_mean, energy_to_level, to_energy
from hotspots.analysis.standards import energy_to_level_array, to_energy_array

TOLERANCE = 1e-9  # dB: rounding of the power and the logarithm
levels = st.floats(min_value=-20.0, max_value=200.0)
level_lists = st.lists(levels, min_size=1, max_size=50)


def test_the_mean_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no levels"):
        energy_mean([])


def test_two_levels_ten_decibels_apart() -> None:
    assert energy_mean([60.0, 70.0]) == pytest.approx(10 * math.log10((1e6 + 1e7) / 2))


@given(levels, st.integers(min_value=1, max_value=50))
def test_the_mean_of_equal_levels_is_the_level(level: float, n: int) -> None:
    assert energy_mean([level] * n) == pytest.approx(level, abs=TOLERANCE)


@given(level_lists)
def test_the_mean_lies_between_the_arithmetic_mean_and_the_maximum(values: list[float]) -> None:
    mean = energy_mean(values)
    assert min(values) <= math.fsum(values) / len(values) + TOLERANCE
    assert math.fsum(values) / len(values) - TOLERANCE <= mean <= max(values) + TOLERANCE


@given(level_lists, st.data())
def test_raising_a_level_never_lowers_the_mean(values: list[float], data: st.DataObject) -> None:
    i = data.draw(st.integers(min_value=0, max_value=len(values) - 1))
    raised = list(values)
    raised[i] = data.draw(st.floats(min_value=values[i], max_value=200.0))
    assert energy_mean(raised) >= energy_mean(values) - TOLERANCE


@given(level_lists, st.randoms(use_true_random=False))
def test_the_order_of_the_levels_does_not_matter(values: list[float], rnd: object) -> None:
    shuffled = list(values)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert energy_mean(shuffled) == pytest.approx(energy_mean(values), abs=TOLERANCE)


@given(level_lists, level_lists)
def test_stored_energy_sums_merge_exactly(a: list[float], b: list[float]) -> None:
    energy = math.fsum(map(to_energy, a)) + math.fsum(map(to_energy, b))
    merged = energy_sum_mean(energy, len(a) + len(b))
    assert merged == pytest.approx(energy_mean(a + b), abs=TOLERANCE)


@given(levels)
def test_a_level_survives_the_round_trip_through_energy(level: float) -> None:
    assert energy_to_level(to_energy(level)) == pytest.approx(level, abs=TOLERANCE)


@given(level_lists)
def test_the_array_form_matches_the_rule(values: list[float]) -> None:
    array = np.asarray(values, dtype=np.float64)
    energies = to_energy_array(array)
    assert energies.tolist() == pytest.approx([to_energy(v) for v in values], rel=1e-12)
    as_levels = energy_to_level_array(energies)
    assert as_levels.tolist() == pytest.approx(
        [energy_to_level(e) for e in energies.tolist()], abs=TOLERANCE
    )
    mean = energy_to_level_array(np.asarray([energies.sum() / len(values)]))[0]
    assert mean == pytest.approx(energy_mean(values), abs=TOLERANCE)
