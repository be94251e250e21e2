"""The stored passes of a window as the analysis' pass table.

`read_passes` asks PostgreSQL for the passes the ingest keeps (`pass`) in binary COPY and
`table_from_copy` decodes the stream into a `PassTable`; both the hotspot job and the
before/after test (hotspots.verification) read through them. `table_from_rows` builds the same
table from plain rows, for the evaluation harness and benchmarks that hold passes in memory.
The decoders are pure, so they are tested without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from edge.errors import EnvpatrolError
from hotspots.analysis.passes import PassTable
from store.pass_columns import stat_columns

__all__ = ["CopyFormatError", "read_passes", "row_layout", "table_from_copy", "table_from_rows"]

# The vehicles with passes at the resolution, one index probe each (a loose scan of the primary
# key) rather than a scan of the window: the rows below carry a vehicle's position in this list,
# a number of fixed width, instead of its name.
_VEHICLES = """
WITH RECURSIVE named(vehicle) AS (
  (SELECT vehicle FROM pass WHERE resolution = %(resolution)s ORDER BY vehicle LIMIT 1)
  UNION ALL
  SELECT (SELECT p.vehicle FROM pass p
          WHERE p.resolution = %(resolution)s AND p.vehicle > named.vehicle
          ORDER BY p.vehicle LIMIT 1)
  FROM named WHERE named.vehicle IS NOT NULL
)
SELECT vehicle FROM named WHERE vehicle IS NOT NULL
"""

# The window's passes straight from `pass` (the pass_stat view would make a row per channel, to be
# grouped back together), one row per pass with only the columns the analysis needs, every field
# of fixed width and never NULL, in binary COPY: numpy reads the whole stream as one array of
# records. Times go as PostgreSQL keeps them (microseconds since 2000-01-01): extract(epoch)
# would compute a numeric per value. Per channel: the value (energy mean for logarithmic
# channels, else the mean; NaN without one) and the readings behind it. A pass without a value
# of any of the channels adds nothing and is left out. Aggregating a vehicle's passes into arrays
# instead made PostgreSQL spill and sort hundreds of MB (docs/performance.md).
_COPY_PASSES = """
COPY (
  SELECT v.k::int4, p.cell, p.start_time, p.end_time{columns}
  FROM pass p JOIN unnest(%(vehicles)s::text[]) WITH ORDINALITY AS v(name, k) ON v.name = p.vehicle
  WHERE p.resolution = %(resolution)s AND p.start_time >= %(start)s AND p.start_time < %(end)s
    AND ({counted}){in_cells}
) TO STDOUT (FORMAT BINARY)
"""
_IN_CELLS = " AND p.cell = ANY(%(cells)s::int8[])"
_COPY_COLUMN = ", coalesce({value}, 'NaN'), {n}"
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_POSTGRES_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in microseconds since 1970-01-01
# (name, big-endian numpy type) of the fields of a row before the channels'.
_BASE_FIELDS = (("vehicle", ">i4"), ("cell", ">i8"), ("start", ">i8"), ("end", ">i8"))


class CopyFormatError(EnvpatrolError, ValueError):
    """A COPY stream that is not the rows asked for; `offset` is the byte where it went wrong."""

    def __init__(self, offset: int, problem: str) -> None:
        super().__init__(f"byte {offset}", problem)
        self.offset = offset


def row_layout(channels: Sequence[str]) -> np.dtype[Any]:
    """One row of the binary COPY stream of `read_passes` as a numpy record: the field count,
    then each field's length and value (vehicle position from 1, cell, start and end in
    microseconds since 2000-01-01, then value and count of each channel)."""
    fields: list[tuple[str, str]] = [("fields", ">i2")]
    kinds = list(_BASE_FIELDS)
    for i in range(len(channels)):
        kinds += [(f"value{i}", ">f8"), (f"count{i}", ">i4")]
    for name, kind in kinds:
        fields += [(f"{name}_length", ">i4"), (name, kind)]
    return np.dtype(fields)


def _int(data: memoryview, at: int, size: int) -> int:
    if at + size > len(data):
        raise CopyFormatError(at, "stream ends inside the header")
    return int.from_bytes(data[at : at + size], "big", signed=True)


def table_from_copy(
    channels: Sequence[str], vehicles: Sequence[str], data: bytes | bytearray
) -> PassTable:
    """The pass table of `read_passes`' binary COPY stream: per pass a row of its vehicle's
    position in `vehicles` (from 1), cell, start and end, then value and count of each channel.
    Rows come out in vehicle, then start order; vehicles without a row and channels without any
    value are left out."""
    view = memoryview(data)
    if len(view) < 19 or bytes(view[:11]) != _COPY_SIGNATURE:
        raise CopyFormatError(0, "no binary COPY header")
    at = 19 + _int(view, 15, 4)
    layout = row_layout(channels)
    body = len(view) - 2 - at
    if body < 0 or bytes(view[len(view) - 2 :]) != b"\xff\xff":
        raise CopyFormatError(max(at, len(view) - 2), "no end-of-data marker")
    if body % layout.itemsize:
        raise CopyFormatError(at, f"{body} bytes are not rows of {layout.itemsize}")
    rows = np.frombuffer(view[at : at + body], dtype=layout)
    _check(rows, layout, at)
    return _table(channels, vehicles, rows)


def _check(rows: np.ndarray[Any, Any], layout: np.dtype[Any], at: int) -> None:
    """Every row has the field count and every field the length of the layout."""
    expected = {"fields": (len(layout.names or ()) - 1) // 2}
    for name in layout.names or ():
        if name.endswith("_length"):
            expected[name] = layout.fields[name[: -len("_length")]][0].itemsize  # type: ignore[index]
    for name, value in expected.items():
        wrong = np.flatnonzero(rows[name] != value)
        if len(wrong):
            row = int(wrong[0])
            raise CopyFormatError(
                at + row * layout.itemsize,
                f"row {row}: {name} is {int(rows[name][row])}, not {value}",
            )


def _table(
    channels: Sequence[str], vehicles: Sequence[str], rows: np.ndarray[Any, Any]
) -> PassTable:
    position = rows["vehicle"].astype(np.int64) - 1
    if len(rows) and (position.min() < 0 or position.max() >= len(vehicles)):
        raise CopyFormatError(0, "a row names a vehicle outside the list")
    present = np.zeros(len(vehicles), dtype=bool)
    present[position] = True
    index = np.cumsum(present) - 1
    vehicle = index[position]
    start_us = rows["start"].astype(np.int64)
    order = _by_vehicle_and_time(vehicle, start_us)
    vehicle = vehicle[order]
    values: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}
    counts: dict[str, np.ndarray[Any, np.dtype[np.int64]]] = {}
    for i, channel in enumerate(channels):
        count = rows[f"count{i}"][order].astype(np.int64)
        if not count.any():
            continue
        value = rows[f"value{i}"][order].astype(np.float64)
        value[count == 0] = np.nan
        values[channel] = value
        counts[channel] = count
    return PassTable(
        vehicles=tuple(v for v, kept in zip(vehicles, present, strict=True) if kept),
        vehicle=vehicle,
        cell=rows["cell"][order].astype(np.int64),
        start=_seconds(start_us[order]),
        end=_seconds(rows["end"][order].astype(np.int64)),
        values=values,
        counts=counts,
    )


def _seconds(microseconds: np.ndarray[Any, np.dtype[np.int64]]) -> np.ndarray[Any, Any]:
    """Epoch seconds of PostgreSQL's microseconds: one exact integer division, so the nearest
    double to the true value, as extract(epoch) would give."""
    return (microseconds + _POSTGRES_EPOCH_US) / 1e6


def _by_vehicle_and_time(
    vehicle: np.ndarray[Any, np.dtype[np.int64]], start_us: np.ndarray[Any, np.dtype[np.int64]]
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The stable order by vehicle, then start: the table does not depend on where PostgreSQL
    keeps the rows. One sort of a combined key when it fits 63 bits."""
    if len(vehicle) == 0:
        return np.zeros(0, dtype=np.int64)
    offset = start_us - start_us.min()
    span_bits = int(offset.max()).bit_length()
    vehicle_bits = int(vehicle.max()).bit_length()
    if span_bits + vehicle_bits <= 62:
        key = (vehicle << span_bits) | offset
        if bool((np.diff(key) >= 0).all()):
            return np.arange(len(key), dtype=np.int64)
        return np.argsort(key, kind="stable").astype(np.int64)
    return np.lexsort((start_us, vehicle)).astype(np.int64)


def table_from_rows(channels: Sequence[str], rows: Sequence[Sequence[Any]]) -> PassTable:
    """The pass table of rows of passes: (vehicle, cell, start epoch s, end epoch s, then value
    and n of each of `channels`, None where the pass has no usable value)."""
    n = len(rows)
    if n == 0:
        empty = np.zeros(0)
        none = np.zeros(0, dtype=np.int64)
        return PassTable(
            (), none, none, empty, empty, dict.fromkeys(channels, empty),
            dict.fromkeys(channels, none),
        )  # fmt: skip
    columns = list(zip(*rows, strict=True))
    names, vehicle = np.unique(np.array(columns[0], dtype=object), return_inverse=True)
    values: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}
    counts: dict[str, np.ndarray[Any, np.dtype[np.int64]]] = {}
    for k, channel in enumerate(channels):
        value = np.array(columns[4 + 2 * k], dtype=np.float64)  # None becomes NaN
        count = np.nan_to_num(np.array(columns[5 + 2 * k], dtype=np.float64)).astype(np.int64)
        value[count == 0] = np.nan
        values[channel] = value
        counts[channel] = count
    return PassTable(
        vehicles=tuple(str(v) for v in names),
        vehicle=np.asarray(vehicle, dtype=np.int64).reshape(n),
        cell=np.array(columns[1], dtype=np.int64),
        start=np.array(columns[2], dtype=np.float64),
        end=np.array(columns[3], dtype=np.float64),
        values=values,
        counts=counts,
    )


def read_passes(
    conn: psycopg.Connection[Any],
    resolution: int,
    start: datetime,
    end: datetime,
    channels: Sequence[str],
    cells: Sequence[int] | None = None,
) -> PassTable:
    """The passes of [start, end) at `resolution` with a value of any of `channels` (those of
    the channels without any value in the window are left out of the table); only those in
    `cells` when given."""
    params: dict[str, Any] = {"resolution": resolution, "start": start, "end": end}
    if cells is not None:
        params["cells"] = [int(c) for c in cells]
    vehicles = [str(row[0]) for row in conn.execute(_VEHICLES, params)]
    stats = [stat_columns(c) for c in channels]
    query = sql.SQL(_COPY_PASSES).format(
        columns=sql.Composed(
            [
                sql.SQL(_COPY_COLUMN).format(value=stat.value("p"), n=stat.count("p"))
                for stat in stats
            ]
        ),
        counted=sql.SQL(" OR ").join([stat.counted("p") for stat in stats])
        if stats
        else sql.SQL("false"),
        in_cells=sql.SQL(_IN_CELLS if cells is not None else ""),
    )
    blocks: list[bytes] = []
    with conn.cursor() as cur, cur.copy(query, {**params, "vehicles": vehicles}) as copy:
        blocks.extend(bytes(block) for block in copy)
    return table_from_copy(channels, vehicles, b"".join(blocks))
