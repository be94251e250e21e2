"""Patrol readings from the box simulator's pollution field and route, stored by the ingest's
writer: the simulator's truth (background drift plus the Shuangjing sources) through its sensor
models (transport delay, first-order lag, noise, drift, quantisation of the default modules),
10 s sampling along the loop, GNSS positions; no serial link or broker in between (the
pipeline end-to-end test covers those). The dashboard's browser test and the API routes'
benchmark fill their databases with these."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import psycopg

from edge.wire import Position, Reading
from firmware_sim.drive import CruiseDrive
from firmware_sim.field import SHUANGJING_SOURCES, PollutionField
from firmware_sim.route import SHUANGJING_LOOP
from firmware_sim.sensor import DEFAULT_SENSORS, SensorArray
from ingest.writer import Writer
from store.analysis_meta import read_analysis
from store.migrate import current_backend

__all__ = ["simulated_readings", "store_readings"]

SPEED_MPS = 6.0
STEP = timedelta(seconds=10)


def simulated_readings(
    start: datetime, *, vehicles: int = 2, days: int = 4, drives_per_day: int = 3, seed: int = 7
) -> list[Reading]:
    field = PollutionField(SHUANGJING_SOURCES, seed=seed)
    rng = random.Random(seed)
    loop_s = SHUANGJING_LOOP.length_m / SPEED_MPS
    out: list[Reading] = []
    for v in range(vehicles):
        name = f"patrol-{v + 1:02d}"
        seq = 0
        # powered long before the first drive: no warm-up in these readings
        box = SensorArray(DEFAULT_SENSORS, rng, (start - timedelta(days=1)).timestamp())
        for day in range(days):
            for drive in range(drives_per_day):
                departure = start + timedelta(days=day, hours=2 + 3 * drive, minutes=25 * v)
                route = CruiseDrive(SHUANGJING_LOOP, departure, SPEED_MPS, offset_m=v * 1500.0)
                moment = departure

                def truth(ts: float, route: CruiseDrive = route) -> dict[str, float]:
                    moment = datetime.fromtimestamp(ts, start.tzinfo)
                    where = route.state(moment)
                    return dict(field.true_values(where.lat, where.lon, moment))

                while moment < departure + timedelta(seconds=loop_s):
                    state = route.state(moment)
                    measured = box.read(moment.timestamp(), truth)
                    values: dict[str, float | None] = {
                        ch: value for ch, value in measured.items() if ch in DEFAULT_SENSORS
                    }
                    seq += 1
                    out.append(
                        Reading(
                            vehicle=name,
                            seq=seq,
                            time=moment,
                            time_source="gnss",
                            position=Position(
                                state.lat,
                                state.lon,
                                True,
                                1,
                                10,
                                0.8,
                                state.speed_mps,
                                state.heading_deg,
                                0.5,
                            ),
                            values=values,
                            profile="default-multi",
                        )
                    )
                    moment += STEP
    return out


def store_readings(database_url: str, readings: list[Reading]) -> None:
    """Write `readings` into the migrated database at `database_url` as the ingest does, in
    batches of a thousand."""
    with psycopg.connect(database_url) as conn:
        plain = current_backend(conn) == "plain"  # type: ignore[arg-type]
        writer = Writer(conn, read_analysis(conn).resolution, plain)  # type: ignore[arg-type]
        writer.prepare()
        for i in range(0, len(readings), 1000):
            writer.write(readings[i : i + 1000], [], [])
        conn.commit()
