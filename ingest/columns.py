"""The columns of the `reading` table, in the order the writer copies them."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

import orjson

from edge.units import CHANNELS

CHANNEL_COLUMNS = tuple(CHANNELS)  # column names equal channel names (see 0001_core.sql)
BASE_COLUMNS = (
    "vehicle",
    "seq",
    "time",
    "time_source",
    "lat",
    "lon",
    "fix_valid",
    "fix_quality",
    "satellites",
    "hdop",
    "speed_mps",
    "course_deg",
    "fix_age_s",
    "cell",
    "profile",
    "flags",
    "channel_flags",
)
COLUMNS = BASE_COLUMNS + CHANNEL_COLUMNS
# Where a few columns sit in a row tuple (ingest.decode, ingest.writer.row_of).
TIME_AT = COLUMNS.index("time")
LAT_AT = COLUMNS.index("lat")
LON_AT = COLUMNS.index("lon")
FIX_VALID_AT = COLUMNS.index("fix_valid")
CELL_AT = COLUMNS.index("cell")

# PostgreSQL types of COLUMNS (0001_core.sql).
BASE_TYPES = (
    "text",
    "int8",
    "timestamptz",
    "text",
    "float8",
    "float8",
    "bool",
    "int2",
    "int2",
    "float4",
    "float4",
    "float4",
    "float4",
    "int8",
    "text",
    "text[]",
    "jsonb",
)
COLUMN_TYPES = BASE_TYPES + ("float8",) * len(CHANNEL_COLUMNS)

# A row carries `flags` (text[]) and `channel_flags` (jsonb) already in PostgreSQL's binary form,
# made where the row is made: psycopg's dumpers for lists and dicts run in Python for every row
# (0.8 of the 1.35 us of client CPU a row took to encode for COPY). Binary COPY has no types of
# its own: each field is the bytes the column type's receive function reads, so these two go
# through psycopg's bytes dumper, as they are.
COPY_TYPES = tuple(
    "bytea" if name in ("flags", "channel_flags") else kind
    for name, kind in zip(COLUMNS, COLUMN_TYPES, strict=True)
)
_TEXT_OID = 25
NO_FLAGS = struct.pack("!iiI", 0, 0, _TEXT_OID)  # no dimensions, no NULLs, of text
NO_CHANNEL_FLAGS = b"\x01{}"  # jsonb's format version, then the JSON text


def flags_field(flags: Sequence[str]) -> bytes:
    """`flags` as a binary text[]: dimensions, NULL flag, element type, then (one dimension)
    its length and lower bound, and each element's length and UTF-8 bytes."""
    if not flags:
        return NO_FLAGS
    items = [flag.encode() for flag in flags]
    head = struct.pack("!iiIii", 1, 0, _TEXT_OID, len(items), 1)
    return head + b"".join(struct.pack("!i", len(item)) + item for item in items)


def channel_flags_field(channel_flags: Mapping[str, Sequence[str]]) -> bytes:
    """`channel_flags` as a binary jsonb."""
    return b"\x01" + orjson.dumps(channel_flags) if channel_flags else NO_CHANNEL_FLAGS
