"""The store on the real PostgreSQL: passes and rollups under late, out-of-order and repeated
batches, the rebuild at another resolution, partitions, retention and roles."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import h3
import psycopg
import pytest

from edge.quality import STATS_EXCLUDED_FLAGS, TRACK_EXCLUDED_FLAGS
from edge.wire import Position, Reading
from ingest.passes import TrackPoint, passes_of
from ingest.rebuild import rebuild
from ingest.writer import NEW_PARTITIONS_PER_BATCH, DeadLetter, Writer, cell_of, insert_sql
from store.migrate import migrate

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 3, 7, 50, tzinfo=UTC)  # crosses an hour and, at 23:50 below, a day
GAP = timedelta(seconds=120)


def drive(vehicle: str, n: int, seed: int, start: datetime = T0) -> list[Reading]:
    """A vehicle along a street with stops, gaps and flagged readings, one reading per ~10 s."""
    rnd = random.Random(seed)
    out = []
    moment = start
    lon = 116.40
    for seq in range(n):
        moment += timedelta(seconds=rnd.choice([10, 10, 10, 10, 30, 150, 400]))
        lon += rnd.choice([0.0, 0.0, 0.0007, 0.0015])
        flags: tuple[str, ...] = ()
        channel_flags: dict[str, tuple[str, ...]] = {}
        roll = rnd.random()
        if roll < 0.05:
            flags = ("stationary",)
        elif roll < 0.08:
            flags = ("stale_fix",)
        elif roll < 0.12:
            channel_flags = {"pm25": ("spike",)}
        valid = rnd.random() > 0.03
        out.append(
            Reading(
                vehicle=vehicle,
                seq=seq,
                time=moment,
                time_source="gnss",
                position=Position(39.9, lon, valid, 1, 9, 0.9, 5.0, 90.0, 0.5),
                values={"pm25": rnd.uniform(5, 80), "noise": rnd.uniform(50, 85), "co2": None},
                profile="default-multi",
                flags=flags,
                channel_flags=channel_flags,
            )
        )
    return out


def expected_passes(
    readings: list[Reading], resolution: int, gap: timedelta
) -> set[tuple[Any, ...]]:
    """Passes as the pure segmenter sees the whole track at once."""
    out: set[tuple[Any, ...]] = set()
    for vehicle in {r.vehicle for r in readings}:
        points = []
        for r in readings:
            p = r.position
            if r.vehicle != vehicle or p is None or not p.valid:
                continue
            if set(r.flags) & set(TRACK_EXCLUDED_FLAGS):
                continue
            excluded = bool(set(r.flags) & set(STATS_EXCLUDED_FLAGS))
            values = {
                c: v
                for c, v in r.values.items()
                if v is not None and not excluded and c not in r.channel_flags
            }
            points.append(TrackPoint(r.time, r.seq, cell_of(p.lat, p.lon, resolution), values))
        for found in passes_of(vehicle, points, gap):
            stats = tuple(
                (c, s.n, round(s.mean, 6), round(s.energy_mean or 0.0, 6))
                for c, s in sorted(found.stats.items())
            )
            out.add(
                (
                    vehicle,
                    found.start,
                    found.first_seq,
                    found.end,
                    found.cell,
                    found.readings,
                    stats,
                )
            )
    return out


def expected_rollups(readings: list[Reading], resolution: int) -> list[tuple[Any, ...]]:
    """(resolution, cell, hour, channel, n, sum, min, max, energy_sum) as the rule reads: every
    reading with a valid fix and no excluded flag, each value not flagged for its channel."""
    groups: dict[tuple[Any, ...], list[float]] = {}
    for r in readings:
        p = r.position
        if p is None or not p.valid or set(r.flags) & set(STATS_EXCLUDED_FLAGS):
            continue
        hour = r.time.replace(minute=0, second=0, microsecond=0)
        for channel, value in r.values.items():
            if value is not None and channel not in r.channel_flags:
                key = (resolution, cell_of(p.lat, p.lon, resolution), hour, channel)
                groups.setdefault(key, []).append(value)
    return [
        (*key, len(vs), sum(vs), min(vs), max(vs),
         sum(10 ** (v / 10) for v in vs) if key[3] == "noise" else None)
        for key, vs in sorted(groups.items())
    ]  # fmt: skip


def stored_passes(conn: psycopg.Connection[Any], resolution: int) -> set[tuple[Any, ...]]:
    stats: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for row in conn.execute(
        "SELECT vehicle, start_time, first_seq, channel, n, mean, coalesce(energy_mean, 0)"
        " FROM pass_stat WHERE resolution = %s ORDER BY channel",
        (resolution,),
    ):
        stats.setdefault(row[:3], []).append((row[3], row[4], round(row[5], 6), round(row[6], 6)))
    rows = conn.execute(
        "SELECT vehicle, start_time, first_seq, end_time, cell, readings FROM pass"
        " WHERE resolution = %s",
        (resolution,),
    ).fetchall()
    return {(*row, tuple(stats.get(row[:3], []))) for row in rows}


def rollups(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT resolution, cell, bucket, channel, n, round(sum::numeric, 6), min, max,"
        " round(energy_sum::numeric, 3) FROM cell_rollup ORDER BY 1, 2, 3, 4"
    ).fetchall()


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url) as connection:
        yield connection


def writer_for(conn: psycopg.Connection[Any]) -> Writer:
    backend = migrate(conn)
    conn.autocommit = False
    writer = Writer(conn, 10, plain=backend == "plain")
    writer.prepare()
    return writer


def test_late_out_of_order_and_repeated_batches_give_the_passes_of_the_whole_track(
    conn: psycopg.Connection[Any],
) -> None:
    readings = drive("car-a", 300, seed=1) + drive("car-b", 200, seed=2)
    writer = writer_for(conn)
    rnd = random.Random(7)
    order = list(readings)
    rnd.shuffle(order)
    # Batches of random size; every third batch is delivered twice (a redelivery after a crash).
    i = 0
    batches = 0
    while i < len(order):
        size = rnd.randint(1, 60)
        batch = order[i : i + size]
        writer.write(batch, [], [])
        if batches % 3 == 0:
            writer.write(batch, [], [])
        i += size
        batches += 1
    assert conn.execute("SELECT count(*) FROM reading").fetchone() == (len(readings),)
    expected = expected_passes(readings, 10, GAP)
    assert len(expected) > 100  # the drive has many passes, some with gaps, some with stops
    assert stored_passes(conn, 10) == expected
    incremental = rollups(conn)
    expected_sums = expected_rollups(readings, 10)
    assert [row[:4] for row in incremental] == [row[:4] for row in expected_sums]
    for row, want in zip(incremental, expected_sums, strict=True):
        assert (row[4], row[6], row[7]) == (want[4], want[6], want[7])
        assert float(row[5]) == pytest.approx(want[5], abs=1e-6)  # rounded to 6 places
        assert (row[8] is None) == (want[8] is None)
        assert row[8] is None or float(row[8]) == pytest.approx(want[8], abs=1e-3)
    conn.commit()

    # The rebuild from scratch at the same settings agrees with what the batches built.
    rebuild(conn)
    assert rollups(conn) == incremental
    assert stored_passes(conn, 10) == expected_passes(readings, 10, GAP)


def test_readings_in_order_extend_passes_like_the_whole_track(
    conn: psycopg.Connection[Any],
) -> None:
    """The usual case, done set-based in SQL: every batch comes after each vehicle's newest pass,
    so passes grow in place (statistics merged) or new ones start; some batches come twice,
    some also repeat readings already stored or one of their own (the insert then skips them
    and the new readings are found in the database instead of the batch)."""
    readings = drive("car-a", 300, seed=3) + drive("car-b", 250, seed=4)
    readings.sort(key=lambda r: (r.time, r.seq))
    writer = writer_for(conn)
    rnd = random.Random(11)
    i = 0
    while i < len(readings):
        size = rnd.choice([1, 1, 2, 3, 7, 25])
        batch = readings[i : i + size]
        if i and rnd.random() < 0.2:
            writer.write(readings[max(0, i - 3) : i + size] + batch[:1], [], [])
        else:
            writer.write(batch, [], [])
        if rnd.random() < 0.2:
            writer.write(batch, [], [])
        i += size
    expected = expected_passes(readings, 10, GAP)
    assert len(expected) > 100
    assert stored_passes(conn, 10) == expected


def test_after_a_redelivery_the_insert_skips_stored_readings_until_a_batch_has_none(
    conn: psycopg.Connection[Any],
) -> None:
    """The insert first runs as if every reading were new; a batch holding stored readings
    makes the next ones skip them straight away, until one finds none stored."""
    readings = drive("car-a", 90, seed=5)
    readings.sort(key=lambda r: (r.time, r.seq))
    a, b, c = readings[:30], readings[30:60], readings[60:]
    writer = writer_for(conn)
    steps = [(a, False), (a + b[:5], True), (b, True), (c, False)]
    for batch, expect_stored in steps:
        writer.write(batch, [], [])
        assert writer.expect_stored is expect_stored
    assert conn.execute("SELECT count(*) FROM reading").fetchone() == (len(readings),)
    assert stored_passes(conn, 10) == expected_passes(readings, 10, GAP)


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize("ignore_stored", [False, True])
def test_the_insert_upserts_rollup_rows_in_key_order(
    conn: psycopg.Connection[Any], ignore_stored: bool
) -> None:
    """Two workers' batches with cells in common lock the same rollup rows: each takes them in
    key order (the unique key's channel, bucket, cell), whatever order the aggregation gives,
    so one waits for the other and neither for both (a deadlock, the batch written again); the
    vehicle rows after them, in vehicle order, likewise."""
    writer_for(conn)
    params = {"resolution": 10, "stats_excluded": list(STATS_EXCLUDED_FLAGS)}
    sql = insert_sql(ignore_stored=ignore_stored)
    row = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    nodes = list(_plan_nodes(row[0][0]["Plan"]))
    # the rollup's channel comes from its VALUES list, named as PostgreSQL names that column
    rollup_key = (("channel", "column1"), ("date_bin",), ("cell",))
    for table, key in (("cell_rollup", rollup_key), ("vehicle", (("vehicle",),))):
        upsert = next(n for n in nodes if n.get("Relation Name") == table)
        below = list(_plan_nodes(upsert["Plans"][0]))
        sort = next(n for n in below if n["Node Type"] == "Sort")
        # nothing between the sort and the upsert reorders the rows
        assert {n["Node Type"] for n in below[: below.index(sort)]} <= {"Subquery Scan", "Unique"}
        keys = sort["Sort Key"]
        assert len(keys) >= len(key), keys
        assert all(any(n in k for n in names) for names, k in zip(key, keys, strict=False)), keys


def test_flagged_values_stay_stored_but_out_of_statistics(conn: psycopg.Connection[Any]) -> None:
    writer = writer_for(conn)
    position = Position(39.9, 116.4, True)
    readings = [
        Reading("car-c", 0, T0, "gnss", position, {"pm25": 10.0}, "p"),
        Reading("car-c", 1, T0 + timedelta(seconds=10), "gnss", position, {"pm25": 500.0}, "p",
                channel_flags={"pm25": ("spike",)}),
        Reading("car-c", 2, T0 + timedelta(seconds=20), "gnss", position, {"pm25": 900.0}, "p",
                flags=("stationary",)),
        Reading("car-c", 3, T0 + timedelta(seconds=30), "gnss", position, {"pm25": 20.0}, "p"),
    ]  # fmt: skip
    writer.write(readings, [], [])
    assert conn.execute("SELECT count(*) FROM reading").fetchone() == (4,)
    assert conn.execute("SELECT readings FROM pass").fetchone() == (4,)
    assert conn.execute("SELECT n, mean, max FROM pass_stat WHERE channel = 'pm25'").fetchone() == (
        2,
        15.0,
        20.0,
    )
    assert conn.execute("SELECT n, max FROM cell_rollup WHERE channel = 'pm25'").fetchone() == (
        2,
        20.0,
    )


def test_rebuild_at_another_resolution_from_the_stored_positions(
    conn: psycopg.Connection[Any],
) -> None:
    readings = drive("car-d", 150, seed=4)
    writer = writer_for(conn)
    writer.write(readings, [], [])
    report = rebuild(conn, 11, timedelta(seconds=60))
    assert report.resolution == 11
    assert report.readings == sum(1 for r in readings if r.position and r.position.valid)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta["h3_resolution"] == "11"
    assert float(meta["pass_gap_s"]) == 60.0
    for lat, lon, cell in conn.execute("SELECT lat, lon, cell FROM reading WHERE fix_valid"):
        assert cell == h3.str_to_int(h3.latlng_to_cell(lat, lon, 11))
    assert conn.execute("SELECT DISTINCT resolution FROM cell_rollup").fetchall() == [(11,)]
    assert conn.execute("SELECT DISTINCT resolution FROM pass").fetchall() == [(11,)]
    assert stored_passes(conn, 11) == expected_passes(readings, 11, timedelta(seconds=60))

    # The ingest follows: the next batch is cut at resolution 11 and joins the rebuilt passes.
    more = drive("car-d", 180, seed=4)[150:]
    writer.write(more, [], [])
    assert writer.resolution == 11
    assert stored_passes(conn, 11) == expected_passes(readings + more, 11, timedelta(seconds=60))


def plain_only(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'backend'").fetchone()
    if row != ("plain",):
        pytest.skip("daily partitions are the plain-PostgreSQL path; this database is TimescaleDB")


def partitions(conn: psycopg.Connection[Any]) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'reading'::regclass ORDER BY 1"
        )
    ]


def test_daily_partitions_are_made_ahead_and_late_days_leave_the_default(
    conn: psycopg.Connection[Any],
) -> None:
    writer = writer_for(conn)
    plain_only(conn)
    today = datetime.now(UTC).date()
    names = partitions(conn)
    for d in range(-1, 8):
        assert f"reading_p{today + timedelta(days=d):%Y%m%d}" in names
    assert "reading_default" in names
    # A reading of a day without a partition, put straight into the default partition (as if
    # stored before partitions were made), moves into its own partition when one is made.
    conn.execute("INSERT INTO reading_default (vehicle, seq, time, time_source, profile)"
                 " VALUES ('car-e', 99, '2024-01-10T12:00Z', 'gnss', 'p')")  # fmt: skip
    position = Position(39.9, 116.4, True)
    old = [
        Reading(
            "car-e", 0, datetime(2024, 1, 9, 23, 59, 50, tzinfo=UTC), "gnss", position, {}, "p"
        ),
        Reading("car-e", 1, datetime(2024, 1, 10, 0, 0, 10, tzinfo=UTC), "gnss", position, {}, "p"),
    ]
    writer.write(old, [], [])
    assert {"reading_p20240109", "reading_p20240110"} <= set(partitions(conn))
    assert conn.execute("SELECT count(*) FROM reading_default").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM reading").fetchone() == (3,)
    conn.commit()

    # Retention: whole days before the cut-off go, by dropping their partitions.
    dropped = [
        r[0] for r in conn.execute("SELECT envpatrol_drop_partitions(%s)", (date(2024, 1, 10),))
    ]
    assert dropped == ["reading_p20240109"]
    assert conn.execute("SELECT seq FROM reading ORDER BY seq").fetchall() == [(1,), (99,)]


def test_roles_writer_writes_reader_reads_and_future_partitions_follow(
    conn: psycopg.Connection[Any],
) -> None:
    writer = writer_for(conn)
    roles = {
        r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'envpatrol_%'")
    }
    if not {"envpatrol_writer", "envpatrol_reader"} <= roles:
        pytest.skip("the migrating user could not create the envpatrol roles (needs CREATEROLE)")

    def can(role: str, table: str, privilege: str) -> bool:
        row = conn.execute(
            "SELECT has_table_privilege(%s, %s, %s)", (role, table, privilege)
        ).fetchone()
        return bool(row and row[0])

    def check(tables: list[str]) -> None:
        for table in tables:
            assert can("envpatrol_reader", table, "SELECT"), table
            assert not can("envpatrol_reader", table, "INSERT"), table
            assert can("envpatrol_writer", table, "INSERT"), table

    tables = ["reading", "pass", "pass_stat", "cell_rollup", "dead_letter"]
    if writer.plain:
        # A partition made after the migrations (by the owner-rights function) is covered by
        # the default privileges, like every table a later migration adds.
        writer.ensure_partitions({date(2031, 5, 5)})
        check([*tables, "reading_p20310505"])
        owner_functions = ["envpatrol_ensure_partition(date)", "envpatrol_drop_partitions(date)"]
    else:
        # TimescaleDB gives a new chunk the hypertable's privileges; the chunk is made by a
        # reading of a new day, rolled back afterwards.
        with conn.transaction(force_rollback=True):
            conn.execute(
                "INSERT INTO reading (vehicle, seq, time, time_source, profile)"
                " VALUES ('car-r', 0, '2031-05-05 12:00+00', 'gnss', 'p')"
            )
            chunk = conn.execute(
                "SELECT format('%I.%I', chunk_schema, chunk_name)"
                " FROM timescaledb_information.chunks WHERE hypertable_name = 'reading'"
                " AND range_start <= '2031-05-05 12:00+00' AND range_end > '2031-05-05 12:00+00'"
            ).fetchone()
            assert chunk is not None
            check([*tables, str(chunk[0])])
        owner_functions = ["envpatrol_set_policies(interval, interval)"]
    schema = conn.execute(
        "SELECT has_schema_privilege('envpatrol_writer', 'public', 'CREATE'),"
        " has_schema_privilege('envpatrol_reader', 'public', 'CREATE')"
    ).fetchone()
    assert schema == (False, False)
    for function in owner_functions:
        executes = conn.execute(
            "SELECT has_function_privilege('envpatrol_writer', %s, 'EXECUTE'),"
            " has_function_privilege('envpatrol_reader', %s, 'EXECUTE')",
            (function, function),
        ).fetchone()
        assert executes == (True, False), function


def test_the_rebuild_command_and_the_passes_query(
    conn: psycopg.Connection[Any],
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse

    from ingest.cli import rebuild_command
    from store.conditions import QueryError, TimeRange, VehicleFilter
    from store.passes import pass_statistics

    readings = drive("car-f", 120, seed=6)
    writer = writer_for(conn)
    writer.write(readings, [], [])
    conn.commit()

    parser = argparse.ArgumentParser()
    run = rebuild_command(parser)
    args = parser.parse_args(["--resolution", "9", "--pass-gap-s", "300"])
    monkeypatch.setenv("ENVPATROL_DATABASE_URL", database_url)
    assert run(args) == 0
    assert "rebuilt at H3 resolution 9, pass gap 300 s" in capsys.readouterr().out
    assert run(parser.parse_args(["--resolution", "16"])) == 2
    assert "0..15" in capsys.readouterr().err

    expected = expected_passes(readings, 9, timedelta(seconds=300))
    found = pass_statistics(conn, "noise", TimeRange(), VehicleFilter("car-f"))
    with_noise = [p for p in expected if any(s[0] == "noise" for s in p[6])]
    assert len(found) == len(with_noise) > 0
    assert all(h3.get_resolution(p.cell) == 9 for p in found)
    assert all(p.energy_mean is not None and p.energy_mean >= p.mean - 1e-9 for p in found)
    with pytest.raises(QueryError):
        pass_statistics(conn, "noise", TimeRange(), limit=0)


def test_two_workers_writing_the_same_vehicles_give_the_passes_of_the_whole_track(
    conn: psycopg.Connection[Any], database_url: str
) -> None:
    """Several ingest workers on a shared subscription get the same vehicle's messages in turn,
    so their transactions extend and cut the same passes at the same moments. A batch's insert
    statement upserts the `vehicle` row of each of its vehicles (and the rollup rows of their
    cells and hours) before the pass statement runs: those row locks hold any other batch
    touching the same vehicle until this one commits, and the other's pass statement then starts
    from what this one stored. The passes are those of the whole track, as with one worker.
    Both take those locks in key order (rollup rows, then vehicles), so neither ever waits for
    the other while holding what the other waits for: no deadlock, no batch written twice."""
    readings: list[Reading] = []
    for k in range(10):
        readings += drive(f"car-{k}", 150, seed=20 + k)
    readings.sort(key=lambda r: (r.time, r.vehicle))
    writer_for(conn)  # migrated
    messages = [readings[i : i + 20] for i in range(0, len(readings), 20)]
    errors: list[BaseException] = []
    deadlocks: list[str] = []

    def work(worker: int) -> None:
        try:
            with psycopg.connect(database_url) as own:
                writer = writer_for(own)
                for batch in messages[worker::2]:  # round robin, as Mosquitto deals them
                    for _attempt in range(20):
                        try:
                            writer.write(batch, [], [])
                            break
                        except psycopg.errors.DeadlockDetected as exc:
                            deadlocks.append(str(exc))
                            own.rollback()  # the service retries a batch the same way
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert not deadlocks, deadlocks
    expected = expected_passes(readings, 10, GAP)
    assert len(expected) > 100
    assert stored_passes(conn, 10) == expected


def test_dead_letters_hold_any_bytes_and_escape_unstorable_text(
    conn: psycopg.Connection[Any],
) -> None:
    writer = writer_for(conn)
    payload = bytes(range(256)) + b'{"profile": "a\\u0000b"}\x00'
    letter = DeadLetter(
        "envpatrol/v1/car-n\x00/readings",
        "bad\x00reason",
        "readings[0].values: unknown channel 'pm\x0025' \ud800",
        payload,
        datetime.now(UTC),
    )
    writer.write([], [letter], [])
    row = conn.execute("SELECT topic, reason, detail, payload FROM dead_letter").fetchone()
    assert row == (
        "envpatrol/v1/car-n\\u0000/readings",
        "bad\\u0000reason",
        "readings[0].values: unknown channel 'pm\\u000025' \\ud800",
        payload,
    )


def test_thousands_of_days_in_a_few_messages_make_a_bounded_number_of_partitions(
    conn: psycopg.Connection[Any],
) -> None:
    writer = writer_for(conn)
    plain_only(conn)
    before = set(partitions(conn))
    position = Position(39.9, 116.4, True)
    start = datetime(2001, 1, 1, 12, tzinfo=UTC)
    days = 3_000
    readings = [
        Reading("car-h", seq, start + timedelta(days=seq), "gnss", position, {"pm25": 9.0}, "p")
        for seq in range(days)
    ]
    messages = [readings[i : i + 600] for i in range(0, days, 600)]
    for message in messages:
        writer.write(message, [], [])
    conn.commit()
    made = set(partitions(conn)) - before
    assert 0 < len(made) <= len(messages) * NEW_PARTITIONS_PER_BATCH
    assert conn.execute("SELECT count(*) FROM reading").fetchone() == (days,)
    in_default = conn.execute("SELECT count(*) FROM reading_default").fetchone()
    assert in_default == (days - len(made),)

    # Days outside [earliest, now + max_future] never get a partition of their own.
    fenced = Writer(conn, 10, plain=True, earliest=datetime(2000, 1, 1, tzinfo=UTC))
    fenced.prepare()
    outside = [
        Reading("car-o", 0, datetime(1999, 12, 31, 12, tzinfo=UTC), "gnss", position, {}, "p"),
        Reading("car-o", 1, datetime.now(UTC) + timedelta(days=30), "gnss", position, {}, "p"),
    ]
    fenced.write(outside, [], [])
    conn.commit()
    assert set(partitions(conn)) - before == made
    assert conn.execute("SELECT count(*) FROM reading_default").fetchone() == (
        days - len(made) + 2,
    )


def test_a_host_clock_reading_dated_ahead_pins_neither_the_position_nor_the_newest_reading(
    conn: psycopg.Connection[Any],
) -> None:
    """A gateway whose calendar clock is a day ahead sends its first reading before the receiver
    has a fix; the GNSS-dated readings after it still give the vehicle its position and newest
    reading, and a late backlog of older ones moves neither back."""
    from store.vehicles import vehicle_states

    writer = writer_for(conn)
    values: dict[str, float | None] = {"pm25": 12.0}
    ahead = Reading("car-p", 1, T0 + timedelta(days=1), "host", None, values, "p",
                    flags=("no_fix", "host_time", "clock_unverified"))  # fmt: skip

    def gnss(seq: int, lon: float) -> Reading:
        position = Position(39.9, lon, True, 1, 9, 0.9, 5.0, 90.0, 0.2)
        return Reading(
            "car-p", seq, T0 + timedelta(seconds=10 * seq), "gnss", position, values, "p"
        )

    writer.write([ahead], [], [])
    writer.write([gnss(2, 116.402), gnss(3, 116.403)], [], [])
    writer.write([gnss(4, 116.404)], [], [])
    # An older reading that arrives late (the outbox's backlog) and one of the host again.
    lost = Reading("car-p", 6, T0 + timedelta(days=1, seconds=60), "host", None, values, "p",
                   flags=("no_fix", "host_time", "clock_corrected"))  # fmt: skip
    writer.write([gnss(5, 116.405), lost], [], [])
    writer.write([gnss(0, 116.400)], [], [])
    conn.commit()
    (state,) = vehicle_states(conn)
    assert (state.vehicle, state.last_seq, state.last_time) == (
        "car-p",
        5,
        T0 + timedelta(seconds=50),
    )
    assert (state.lat, state.lon) == (39.9, 116.405)
    assert state.heard_recently
    row = conn.execute(
        "SELECT last_seen > now() - interval '1 minute', last_time_source, last_fix_time"
        " FROM vehicle WHERE vehicle = 'car-p'"
    ).fetchone()
    assert row == (True, "gnss", T0 + timedelta(seconds=50))


def test_a_vehicle_without_any_gnss_time_still_shows_its_newest_reading(
    conn: psycopg.Connection[Any],
) -> None:
    writer = writer_for(conn)
    for seq in range(3):
        writer.write(
            [Reading("car-q", seq, T0 + timedelta(seconds=seq), "host", None, {"pm25": 1.0}, "p")],
            [],
            [],
        )
    conn.commit()
    row = conn.execute(
        "SELECT last_seq, last_time_source, last_lat, last_fix_time FROM vehicle"
    ).fetchone()
    assert row == (2, "host", None, None)
