"""The columns of the `reading` table, in the order the writer copies them."""

from __future__ import annotations

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

# PostgreSQL types of COLUMNS (0001_core.sql), for binary COPY with preset types.
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
