"""The pass reader's decoders, without a database: the binary COPY stream `read_passes` asks
for, built by hand, and plain rows of passes."""

from __future__ import annotations

import struct

import numpy as np
import pytest

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


def _array(kind: str, values: list[float] | list[int]) -> bytes:
    """A one-dimensional binary PostgreSQL array as COPY sends it (element type oid 0 here)."""
    size = struct.calcsize(kind)
    body = b"".join(struct.pack(f">i{kind}", size, v) for v in values)
    return struct.pack(">iiiii", 1, 0, 0, len(values), 1) + body


def _copy_stream(rows: list[tuple[str, list[tuple[int, float, float, float, int]]]]) -> bytes:
    """The binary COPY stream of `read_passes`, built by hand: per vehicle its passes, one
    channel."""
    out = bytearray(b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big"))
    for vehicle, passes in rows:
        fields = [vehicle.encode()]
        for k, kind in enumerate("qddd"):
            fields.append(_array(kind, [p[k] for p in passes]))
        fields.append(_array("i", [p[4] for p in passes]))
        out += struct.pack(">h", len(fields))
        for field in fields:
            out += struct.pack(">i", len(field)) + field
    return bytes(out + b"\xff\xff")


def test_a_binary_copy_stream_becomes_the_analysis_pass_table() -> None:
    data = _copy_stream(
        [
            ("car-a", [(12, 50.0, 60.0, float("nan"), 0)]),
            ("car-b", [(11, 100.0, 110.0, 35.0, 2), (13, 200.0, 205.0, 40.0, 1)]),
        ]
    )
    table = table_from_copy(["pm25"], data)
    assert table.vehicles == ("car-a", "car-b")
    assert table.vehicle.tolist() == [0, 1, 1]
    assert table.cell.tolist() == [12, 11, 13]
    assert table.start.tolist() == [50.0, 100.0, 200.0]
    assert table.end.tolist() == [60.0, 110.0, 205.0]
    assert np.array_equal(table.values["pm25"], [np.nan, 35.0, 40.0], equal_nan=True)
    assert table.counts["pm25"].tolist() == [0, 2, 1]
    assert len(table_from_copy(["pm25"], _copy_stream([]))) == 0
    # A channel without any value in the window is left out.
    assert (
        table_from_copy(["pm25"], _copy_stream([("car-a", [(1, 0.0, 1.0, 0.0, 0)])])).values == {}
    )
    with pytest.raises(CopyFormatError):
        table_from_copy(["pm25", "noise"], data)  # rows of another width
    with pytest.raises(CopyFormatError):
        table_from_copy(["pm25"], data[:-2])
