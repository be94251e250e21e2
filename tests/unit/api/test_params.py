"""Query parameters checked before any database work."""

from __future__ import annotations

import h3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.errors import ParameterError
from api.params import cell_index, hotspot_channel, parse_cell
from hotspots.floors import HOTSPOT_FLOORS
from store.conditions import QueryError


def test_temperature_and_humidity_have_no_hotspots() -> None:
    assert hotspot_channel("no2").name == "no2"
    for name in ("temperature", "humidity"):
        with pytest.raises(QueryError, match="not a pollutant"):
            hotspot_channel(name)
    assert "temperature" not in HOTSPOT_FLOORS


# --- H3 cell ids --------------------------------------------------------------------------------

VALID_CELLS = st.builds(
    h3.latlng_to_cell,
    st.floats(-89.9, 89.9),
    st.floats(-179.9, 179.9),
    st.integers(0, 15),
)


@pytest.mark.parametrize(
    "text",
    ["-1", "10000000000000000", "-10000000000000", "0x8a31aa5a9a47fff", "+8a31aa5a9a47fff",
     " 8a31aa5a9a47fff", "8a31aa5a9a47fff\n", "8a31_aa5a9a47fff", "٨a31aa5a9a47fff",
     "ffffffffffffffff", "0000000000000000", "8a31aa5a9a47fff\x00", ""],
)  # fmt: skip
def test_what_is_not_a_cell_index_is_a_parameter_error(text: str) -> None:
    assert cell_index(text) is None
    with pytest.raises(ParameterError, match="not an H3 cell index") as raised:
        parse_cell(text, "cell")
    assert raised.value.parameter == "cell"


@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_no_integer_written_any_way_overflows(number: int) -> None:
    for text in (str(number), f"{number:x}", f"{number:016x}", hex(number)):
        found = cell_index(text)
        assert found is None or h3.is_valid_cell(found)


@given(st.text(max_size=40))
def test_any_text_is_a_canonical_cell_or_refused(text: str) -> None:
    cell = cell_index(text)
    if cell is None:
        with pytest.raises(ParameterError) as raised:
            parse_cell(text, "cell")
        assert raised.value.status == 400
        assert raised.value.parameter == "cell"
    else:
        assert parse_cell(text, "cell") == cell
        assert h3.is_valid_cell(cell)
        assert cell == h3.int_to_str(h3.str_to_int(cell))


@given(VALID_CELLS)
def test_every_cell_is_taken_in_lower_upper_or_zero_padded_form(cell: str) -> None:
    for text in (cell, cell.upper(), cell.rjust(16, "0")):
        assert parse_cell(text, "cell") == cell
