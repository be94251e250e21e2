"""The writer's pure parts: escaping text for the dead-letter table, choosing the days a batch may
make partitions for, and telling a refused batch from a database that is unavailable."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import psycopg
from hypothesis import given
from hypothesis import strategies as st

from ingest.writer import partition_days, refusal, refused, storable


@given(st.text(), st.integers(min_value=1, max_value=3000))
def test_storable_text_has_no_nul_encodes_and_keeps_the_rest(text: str, limit: int) -> None:
    out = storable(text, limit)
    assert "\x00" not in out
    out.encode()  # UTF-8 can carry it: no lone surrogate left
    assert len(out) <= limit
    if "\x00" not in text and len(text) <= limit:
        try:
            text.encode()
        except UnicodeEncodeError:
            return
        assert out == text


def test_storable_text_escapes_visibly() -> None:
    assert storable("a\x00b\ud800c") == "a\\u0000b\\ud800c"


moments = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@given(
    st.lists(moments, max_size=300),
    st.sets(st.dates(min_value=date(1990, 1, 1), max_value=date(2040, 1, 1)), max_size=50),
    st.integers(min_value=0, max_value=10),
)
def test_partition_days_are_few_new_and_inside_the_window(
    times: list[datetime], made: set[date], limit: int
) -> None:
    earliest, latest = date(2000, 1, 1), date(2030, 1, 1)
    days = partition_days(times, made, earliest, latest, limit)
    wanted = {t.date() for t in times if earliest <= t.date() <= latest} - made
    assert len(days) == min(limit, len(wanted))
    assert set(days) <= wanted
    assert days == sorted(days)
    # The busiest days first: none left out holds more readings than one chosen.
    count = {d: sum(1 for t in times if t.date() == d) for d in wanted}
    if days:
        assert all(count[d] <= min(count[c] for c in days) for d in wanted - set(days))


def test_partition_days_by_utc_day() -> None:
    late = datetime(2024, 1, 1, 23, 30, tzinfo=UTC).astimezone(timezone(timedelta(hours=3)))
    assert partition_days([late], set(), date(2000, 1, 1), date(2030, 1, 1), 4) == [
        date(2024, 1, 1)
    ]


def test_refused_data_errors_are_the_batch_s_own_others_are_retried() -> None:
    assert refused(psycopg.errors.CharacterNotInRepertoire("x"))  # 22021: a NUL in COPY
    assert refused(psycopg.errors.UntranslatableCharacter("x"))  # 22P05: \u0000 in jsonb
    assert refused(psycopg.errors.CheckViolation("x"))  # 23514
    assert refused(psycopg.errors.ProgramLimitExceeded("x"))  # 54000
    assert refused(psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"))
    assert refused(OverflowError("int too big to convert"))
    assert refused(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    for transient in (
        psycopg.OperationalError("the connection is lost"),
        psycopg.errors.AdminShutdown("x"),  # 57P01
        psycopg.errors.DeadlockDetected("x"),  # 40P01
        psycopg.errors.SerializationFailure("x"),  # 40001
        psycopg.errors.TooManyConnections("x"),  # 53300
        psycopg.errors.OutOfMemory("x"),  # 53200
        psycopg.errors.ConnectionFailure("x"),  # 08006
    ):
        assert not refused(transient), transient


def test_a_refusal_names_its_sqlstate() -> None:
    assert refusal(psycopg.errors.CharacterNotInRepertoire("bad byte")) == "22021: bad byte"
    assert refusal(OverflowError("too big")) == "OverflowError: too big"
