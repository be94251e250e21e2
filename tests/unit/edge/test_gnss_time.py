"""Which GNSS dates the agent believes: week rollover, two-digit years, the window of trust."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from edge.gnss_time import (
    AHEAD_OF_HOST,
    ERA,
    HALF_ERA,
    RELEASE_DATE,
    corrected_date,
    pivot_date,
    trusted,
)
from edge.sentences import DateField


def two_digit(day: date) -> DateField:
    return DateField(day.year % 100, day.month, day.day, two_digit_year=True)


def test_a_receiver_one_era_behind_is_corrected_against_the_host() -> None:
    host = datetime(2038, 11, 21, 12, 0, tzinfo=UTC)
    reported = two_digit(date(2038, 11, 21) - ERA)  # 2019-04-07, as `070419`
    assert corrected_date(reported, host).value == date(2038, 11, 21)
    assert corrected_date(reported, host).eras == 1


def test_a_receiver_one_era_behind_is_corrected_without_a_host_clock() -> None:
    today = date(2026, 12, 7)
    unset = datetime(1970, 1, 1, tzinfo=UTC)  # a gateway without a real-time clock
    gnss = corrected_date(two_digit(today - ERA), unset)
    assert (gnss.value, gnss.eras) == (today, 1)
    gnss = corrected_date(DateField(2007, 4, 23, two_digit_year=False), None)  # ZDA's year
    assert gnss.value == date(2007, 4, 23) + ERA


def test_two_digit_years_take_the_century_nearest_the_pivot() -> None:
    host = datetime(2026, 12, 7, tzinfo=UTC)
    # Not 2068 (a fixed pivot at 69) taken as real: 2068 is too far ahead to be trusted.
    late_sixties = corrected_date(DateField(68, 1, 1, True), host).value
    assert late_sixties == date(2068, 1, 1)
    assert not trusted(datetime(2068, 1, 1, tzinfo=UTC), host)
    assert corrected_date(DateField(26, 12, 7, True), host).value == date(2026, 12, 7)
    # In 2080 a receiver's `80` is 2080, not 1980.
    assert corrected_date(DateField(80, 6, 1, True), datetime(2080, 6, 1, tzinfo=UTC)).value == (
        date(2080, 6, 1)
    )


def test_no_such_day_is_no_date() -> None:
    assert corrected_date(DateField(26, 2, 31, True), None).value is None


def test_the_pivot_is_the_host_only_when_its_clock_is_set() -> None:
    assert pivot_date(None) == RELEASE_DATE
    assert pivot_date(datetime(1970, 1, 1, tzinfo=UTC)) == RELEASE_DATE
    assert pivot_date(datetime(2031, 5, 1, tzinfo=UTC)) == date(2031, 5, 1)


@given(
    st.dates(min_value=date(1980, 1, 6), max_value=date(2099, 12, 31)),
    st.one_of(st.none(), st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC))),
    st.booleans(),
)
def test_no_trusted_time_outside_release_and_host(
    reported: date, host: datetime | None, short_year: bool
) -> None:
    field = (
        two_digit(reported)
        if short_year
        else DateField(reported.year, reported.month, reported.day, False)
    )
    gnss = corrected_date(field, host)
    if gnss.value is None:
        # Only a day that does not exist in the year a two-digit year was pivoted to (29
        # February of a century year), or a date pushed past the calendar's end.
        assert short_year or (host is not None and host.date() > date.max - 2 * ERA)
        return
    moment = datetime.combine(gnss.value, datetime.min.time(), tzinfo=UTC)
    if trusted(moment, host):
        assert gnss.value >= RELEASE_DATE
        if host is not None and host.date() >= RELEASE_DATE:
            assert moment <= host + AHEAD_OF_HOST
        else:
            assert gnss.value < RELEASE_DATE + HALF_ERA
    # Corrections are whole eras, never anything else.
    if not short_year:
        assert (gnss.value - reported) % ERA == timedelta(0)
