"""Query parameters shared by several routes, parsed and checked before any database work."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import h3
from fastapi import Depends, Query

from api.errors import ParameterError
from edge.units import CHANNELS, ChannelSpec
from hotspots.floors import HOTSPOT_FLOORS
from store.channels import channel_spec
from store.conditions import QueryError, TimeRange

DEFAULT_SPAN = timedelta(days=30)
# Far enough from datetime's limits that defaults and hour rounding cannot overflow.
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)

# An H3 index is 15 hex digits (16 with a leading zero); `int(text, 16)` alone would also take
# signs, "0x", underscores, spaces and other scripts' digits, and h3 overflows on negative or
# over-long values.
_CELL = re.compile(r"[0-9a-fA-F]{15,16}")

# In a query string an unescaped "+" arrives as a space: "...T08:00:00 08:00" meant "+08:00".
_SPACED_OFFSET = re.compile(r"(T[0-9:.,]+) ([0-9]{2}(:?[0-9]{2})?)$")


def parse_instant(text: str, parameter: str) -> datetime:
    """An ISO 8601 date or date-time; one without a UTC offset is taken as UTC."""
    cleaned = _SPACED_OFFSET.sub(r"\1+\2", text.strip())
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise ParameterError(
            parameter, f"{text!r} is not an ISO 8601 date or time, e.g. 2026-05-01T08:00:00Z"
        ) from exc
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    if not _EARLIEST <= moment <= _LATEST:
        raise ParameterError(parameter, f"{text!r} is outside {_EARLIEST.year}..{_LATEST.year}")
    return moment


def cell_index(text: str) -> str | None:
    """The canonical (lower-case) form of an H3 cell index, or None if `text` is not one."""
    if _CELL.fullmatch(text) is None:
        return None
    cell = h3.int_to_str(int(text, 16))  # at most 16 hex digits: within h3's 64 bits
    return cell if h3.is_valid_cell(cell) else None


def parse_cell(text: str, parameter: str) -> str:
    """An H3 cell index in its canonical form, else a ParameterError naming `parameter`."""
    cell = cell_index(text)
    if cell is None:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ParameterError(parameter, f"{shown!r} is not an H3 cell index")
    return cell


def time_range(
    start: Annotated[
        str | None,
        Query(
            alias="from",
            description="Start (inclusive), ISO 8601; UTC unless an offset is given. "
            "Default: 30 days before `to`, or before now.",
            examples=["2026-05-01T00:00:00Z"],
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(
            alias="to",
            description="End (exclusive), ISO 8601. Default: open-ended.",
            examples=["2026-05-02T00:00:00+08:00"],
        ),
    ] = None,
) -> TimeRange:
    stop = None if end is None else parse_instant(end, "to")
    begin = (
        parse_instant(start, "from")
        if start is not None
        else (stop or datetime.now(UTC)) - DEFAULT_SPAN
    )
    return TimeRange(begin, stop)


Period = Annotated[TimeRange, Depends(time_range)]


def pollutant(
    pollutant: Annotated[
        str,
        Query(
            description="Channel name, as listed by /v1/pollutants.",
            json_schema_extra={"enum": list(CHANNELS)},
        ),
    ],
) -> ChannelSpec:
    return channel_spec(pollutant)


Pollutant = Annotated[ChannelSpec, Depends(pollutant)]


def hotspot_channel(channel: str) -> ChannelSpec:
    """The spec of a channel that can have hotspots: a pollutant, with a floor in
    `hotspots.floors.HOTSPOT_FLOORS` (temperature and humidity have none)."""
    spec = channel_spec(channel)
    if spec.name not in HOTSPOT_FLOORS:
        raise QueryError(
            "channel",
            f"{spec.name} is not a pollutant and has no hotspots; "
            f"choose one of {', '.join(HOTSPOT_FLOORS)}",
        )
    return spec
