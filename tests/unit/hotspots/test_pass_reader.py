"""The pass reader's decoders, without a database: the binary COPY stream `read_passes` asks
for, built by hand, and plain rows of passes."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotspots.pass_reader import CopyFormatError, table_from_copy, table_from_rows


def test_rows_become_the_analysis_pass_table() -> None:
    rows = [
        ("car-b", 11, 100.0, 110.0, 35.0, 2, None, None),
        ("car-a", 12, 50.0, 60.0, None, None, 63.5, 3),
        ("car-b", 13, 200.0, 205.0, 40.0, 1, 61.0, 1),
    ]
    table = table_from_rows(["pm25", "noise"], rows)
    assert table.vehicles == ("car-a", "car-b")
    assert table.vehicle.tolist() == [1, 0, 1]
    assert table.cell.tolist() == [11, 12, 13]
    assert table.start.tolist() == [100.0, 50.0, 200.0]
    assert np.array_equal(table.values["pm25"], [35.0, np.nan, 40.0], equal_nan=True)
    assert table.counts["pm25"].tolist() == [2, 0, 1]
    assert np.array_equal(table.values["noise"], [np.nan, 63.5, 61.0], equal_nan=True)
    empty = table_from_rows(["pm25"], [])
    assert len(empty) == 0
    assert len(empty.values["pm25"]) == 0


_EPOCH_2000 = 946_684_800  # PostgreSQL's time origin in epoch seconds


def _copy_stream(rows: list[tuple[int, int, float, float, float, int]]) -> bytes:
    """The binary COPY stream of `read_passes`, built by hand: per pass its vehicle's position
    (from 1), cell, start and end (epoch s), value and count of one channel."""
    out = bytearray(b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big"))
    for vehicle, cell, start, end, value, count in rows:
        out += struct.pack(">h", 6)
        out += struct.pack(">ii", 4, vehicle) + struct.pack(">iq", 8, cell)
        for t in (start, end):
            out += struct.pack(">iq", 8, round((t - _EPOCH_2000) * 1e6))
        out += struct.pack(">id", 8, value) + struct.pack(">ii", 4, count)
    return bytes(out + b"\xff\xff")


def test_a_binary_copy_stream_becomes_the_analysis_pass_table() -> None:
    names = ["car-a", "car-b", "car-c"]
    data = _copy_stream(
        [
            (2, 13, 200.0, 205.0, 40.0, 1),
            (1, 12, 50.0, 60.0, float("nan"), 0),
            (2, 11, 100.0, 110.0, 35.0, 2),
        ]
    )
    table = table_from_copy(["pm25"], names, data)
    assert table.vehicles == ("car-a", "car-b")
    assert table.vehicle.tolist() == [0, 1, 1]
    assert table.cell.tolist() == [12, 11, 13]
    assert table.start.tolist() == [50.0, 100.0, 200.0]
    assert table.end.tolist() == [60.0, 110.0, 205.0]
    assert np.array_equal(table.values["pm25"], [np.nan, 35.0, 40.0], equal_nan=True)
    assert table.counts["pm25"].tolist() == [0, 2, 1]
    assert len(table_from_copy(["pm25"], names, _copy_stream([]))) == 0
    # A channel without any value in the window is left out.
    assert table_from_copy(["pm25"], names, _copy_stream([(1, 1, 0.0, 1.0, 0.0, 0)])).values == {}
    with pytest.raises(CopyFormatError):
        table_from_copy(["pm25"], names, _copy_stream([(4, 1, 0.0, 1.0, 0.0, 0)]))
    with pytest.raises(CopyFormatError):
        table_from_copy(["pm25", "noise"], names, data)  # rows of another width
    with pytest.raises(CopyFormatError):
        table_from_copy(["pm25"], names, data[:-2])


_PASS = st.tuples(
    st.integers(1, 3),
    st.integers(0, 2**62),
    st.integers(946_684_800, 2_000_000_000),
    st.integers(0, 3600),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(0, 60),
)


@given(st.lists(_PASS, max_size=30))
def test_any_copy_stream_decodes_to_its_passes_in_vehicle_and_time_order(
    passes: list[tuple[int, int, int, int, float, int]],
) -> None:
    rows = [(v, cell, float(t), float(t + d), value, n) for v, cell, t, d, value, n in passes]
    table = table_from_copy(["pm25"], ["a", "b", "c"], _copy_stream(rows))
    assert len(table) == len(rows)
    expected = sorted(rows, key=lambda r: (r[0], r[2]))
    names = [table.vehicles[i] for i in table.vehicle.tolist()]
    assert names == ["abc"[r[0] - 1] for r in expected]
    assert table.start.tolist() == [r[2] for r in expected]
    assert table.end.tolist() == [r[3] for r in expected]
    if any(r[5] for r in rows):
        assert table.counts["pm25"].tolist() == [r[5] for r in expected]
    # Cells of one vehicle and start may come in either order; as a multiset they agree.
    assert sorted(table.cell.tolist()) == sorted(r[1] for r in rows)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_the_copy_format_error(data: bytes) -> None:
    for stream in (data, b"PGCOPY\n\xff\r\n\x00" + data):
        with contextlib.suppress(CopyFormatError):
            table_from_copy(["pm25"], ["a"], stream)
