"""The columns of the `reading` table (0001_core.sql), in the order the writer copies them and
the readings query selects them."""

from __future__ import annotations

from edge.units import CHANNELS

__all__ = [
    "BASE_COLUMNS",
    "CELL_AT",
    "CHANNEL_COLUMNS",
    "COLUMNS",
    "FIX_VALID_AT",
    "LAT_AT",
    "LON_AT",
    "TIME_AT",
]

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
