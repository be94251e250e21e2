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
