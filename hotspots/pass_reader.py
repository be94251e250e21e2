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

__all__ = ["CopyFormatError", "read_passes", "table_from_copy", "table_from_rows"]

# The window's passes straight from `pass` (the pass_stat view would make a row per channel, to be
# grouped back together), only the columns the analysis needs, one row per vehicle with each
# column as an array, in binary COPY: a handful of rows, each array a fixed-width run that numpy
# reads as it is, instead of a message and Python objects per pass. Per channel: the value (energy
# mean for logarithmic channels, else the mean; NaN without one) and the readings behind it. A
# pass without a value of any of the channels adds nothing and is left out.
_COPY_PASSES = """
COPY (
  SELECT vehicle, array_agg(cell), array_agg(extract(epoch FROM start_time)::float8),
         array_agg(extract(epoch FROM end_time)::float8){columns}
  FROM pass
  WHERE resolution = %(resolution)s AND start_time >= %(start)s AND start_time < %(end)s
    AND ({counted})
  GROUP BY vehicle
  ORDER BY vehicle
) TO STDOUT (FORMAT BINARY)
"""
_COPY_COLUMN = ", array_agg(coalesce({value}, 'NaN')), array_agg({n})"
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


class CopyFormatError(EnvpatrolError, ValueError):
    """A COPY stream that is not the rows asked for; `offset` is the byte where it went wrong."""

    def __init__(self, offset: int, problem: str) -> None:
        super().__init__(f"byte {offset}", problem)
        self.offset = offset


def _int(data: memoryview, at: int, size: int) -> int:
    if at + size > len(data):
        raise CopyFormatError(at, "stream ends inside a field")
    return int.from_bytes(data[at : at + size], "big", signed=True)


def _array(data: memoryview, at: int, length: int, kind: str) -> np.ndarray[Any, Any]:
    """A one-dimensional binary PostgreSQL array without NULLs of fixed-width `kind` (numpy)."""
    ndim = _int(data, at, 4)
    if ndim == 0:
        return np.zeros(0, dtype=kind)
    if ndim != 1 or _int(data, at + 4, 4) != 0:
        raise CopyFormatError(at, "not a one-dimensional array without NULLs")
    size = _int(data, at + 12, 4)
    item = np.dtype([("len", ">i4"), ("v", kind)])
    if 20 + size * item.itemsize != length:
        raise CopyFormatError(at, f"{size} elements of {kind} do not fill {length} bytes")
    elements = np.frombuffer(data[at + 20 : at + length], dtype=item)
    if not (elements["len"] == item.itemsize - 4).all():
        raise CopyFormatError(at, f"elements are not {kind}")
    return elements["v"]


def table_from_copy(channels: Sequence[str], data: bytes | bytearray) -> PassTable:
    """The pass table of `read_passes`' binary COPY stream: per vehicle a row of its name and
    arrays of cell, start and end epoch s, then value and count of each channel. Channels
    without any value are left out."""
    view = memoryview(data)
    if not bytes(view[:11]) == _COPY_SIGNATURE:
        raise CopyFormatError(0, "no binary COPY header")
    at = 19 + _int(view, 15, 4)
    fields = 4 + 2 * len(channels)
    kinds = [">i8", ">f8", ">f8"] + [">f8", ">i4"] * len(channels)
    vehicles: list[str] = []
    columns: list[list[np.ndarray[Any, Any]]] = [[] for _ in kinds]
    while (count := _int(view, at, 2)) != -1:
        if count != fields:
            raise CopyFormatError(at, f"a row of {count} fields, not {fields}")
        at += 2
        length = _int(view, at, 4)
        vehicles.append(bytes(view[at + 4 : at + 4 + length]).decode())
        at += 4 + length
        for k, kind in enumerate(kinds):
            length = _int(view, at, 4)
            columns[k].append(_array(view, at + 4, length, kind))
            at += 4 + length
    if at + 2 != len(view):
        raise CopyFormatError(at, "data after the end-of-data marker")

    def joined(k: int, dtype: type) -> np.ndarray[Any, Any]:
        return np.concatenate(columns[k]).astype(dtype) if columns[k] else np.zeros(0, dtype)

    sizes = [len(c) for c in columns[0]]
    values: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}
    counts: dict[str, np.ndarray[Any, np.dtype[np.int64]]] = {}
    for i, channel in enumerate(channels):
        count_i = joined(4 + 2 * i, np.int64)
        if not count_i.any():
            continue
        value = joined(3 + 2 * i, np.float64)
        value[count_i == 0] = np.nan
        values[channel] = value
        counts[channel] = count_i
    return PassTable(
        vehicles=tuple(vehicles),
        vehicle=np.repeat(np.arange(len(vehicles), dtype=np.int64), sizes),
        cell=joined(0, np.int64),
        start=joined(1, np.float64),
        end=joined(2, np.float64),
        values=values,
        counts=counts,
    )


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
) -> PassTable:
    """The passes of [start, end) at `resolution` with a value of any of `channels` (those of
    the channels without any value in the window are left out of the table)."""
    params = {"resolution": resolution, "start": start, "end": end}
    stats = [stat_columns(c) for c in channels]
    query = sql.SQL(_COPY_PASSES).format(
        columns=sql.Composed(
            [sql.SQL(_COPY_COLUMN).format(value=stat.value(), n=stat.count()) for stat in stats]
        ),
        counted=sql.SQL(" OR ").join([stat.counted() for stat in stats])
        if stats
        else sql.SQL("false"),
    )
    data = bytearray()
    with conn.cursor() as cur, cur.copy(query, params) as copy:
        for block in copy:
            data += block
    return table_from_copy(channels, data)
