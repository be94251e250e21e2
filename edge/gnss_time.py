"""Which GNSS dates to believe: GPS week rollover, two-digit years, and a window of trust.

GPS time counts weeks modulo 1024 (about 19.6 years; rollovers on 1999-08-22 and 2019-04-07, the
next on 2038-11-21). A receiver past its firmware's own pivot reports dates a whole number of
1024-week eras early, e.g. 1999-08-22 on 2019-04-07. The date is corrected against a pivot the
agent can trust: its release date, or the host's clock when that is later (a gateway without a
real-time clock boots in 1970, so a host date before the release means "not set").

* A date more than half an era (512 weeks, about 9.8 years) before the pivot is moved forward
  by whole eras until it is within half an era of it.
* A two-digit year (RMC) takes the century that puts it nearest the pivot's year, before the
  rollover correction: `220899` seen in 2019 is 1999-08-22, then 2019-04-07.
* A GNSS time is trusted only in [release date, host + AHEAD_OF_HOST] when the host clock is set,
  and in [release date, pivot + half an era) when it is not. Nothing outside it dates a reading.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from edge.clock import EARLIEST_READING
from edge.sentences import DateField

__all__ = [
    "AHEAD_OF_HOST",
    "ERA",
    "HALF_ERA",
    "RELEASE_DATE",
    "GnssDate",
    "corrected_date",
    "host_date",
    "pivot_date",
    "trusted",
]

# The agent's release: no GNSS date before it is real (edge.clock keeps the one constant).
RELEASE_DATE = EARLIEST_READING.date()
ERA = timedelta(weeks=1024)
HALF_ERA = timedelta(weeks=512)
# How far a GNSS time may lead a set host clock. Receivers' dates are wrong by eras or years
# (rollover, cold-start almanac defaults), a host clock without time sync by seconds to
# minutes: a day tells the two apart without doubting a sound receiver for a drifting host.
AHEAD_OF_HOST = timedelta(days=1)


def host_date(host: datetime | None) -> datetime | None:
    """The host's time when its clock is set (not before the release), else None."""
    if host is None or host.astimezone(UTC).date() < RELEASE_DATE:
        return None
    return host.astimezone(UTC)


def pivot_date(host: datetime | None) -> date:
    """The date GNSS dates are corrected against: the host's when set, else the release's."""
    sane = host_date(host)
    return sane.date() if sane is not None else RELEASE_DATE


class GnssDate:
    """A sentence's date turned into a calendar date, with what it took to get there."""

    __slots__ = ("eras", "value")

    def __init__(self, value: date | None, eras: int) -> None:
        self.value = value  # None: no such calendar day (31 February)
        self.eras = eras  # 1024-week eras added


def corrected_date(field: DateField, host: datetime | None) -> GnssDate:
    """The calendar date a sentence's date field means, by the rules of the module docstring."""
    pivot = pivot_date(host)
    year = field.year
    if field.two_digit_year:
        century = pivot.year - pivot.year % 100
        year = min(
            (century - 100 + year, century + year, century + 100 + year),
            key=lambda y: abs(y - pivot.year),
        )
    try:
        value = date(year, field.month, field.day)
    except ValueError:
        return GnssDate(None, 0)
    eras = 0
    while value < pivot - HALF_ERA:
        if value > date.max - ERA:  # a host clock at the end of the calendar: no such date
            return GnssDate(None, 0)
        value += ERA
        eras += 1
    return GnssDate(value, eras)


def trusted(moment: datetime, host: datetime | None) -> bool:
    """Whether a corrected GNSS time may date a reading (module docstring)."""
    if moment.date() < RELEASE_DATE:
        return False
    sane = host_date(host)
    if sane is not None:
        return moment <= sane + AHEAD_OF_HOST
    return moment.date() < RELEASE_DATE + HALF_ERA
