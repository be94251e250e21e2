"""The vehicles the ingest knows, and what it last heard from each (`vehicle`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg.rows import dict_row

from store.conditions import Conn, QueryError

__all__ = ["VehicleState", "vehicle_states"]


@dataclass(frozen=True, slots=True)
class VehicleState:
    vehicle: str
    state: str | None  # from its retained status message: online / offline; None if never sent
    heard_recently: bool  # the ingest heard from it within the online window
    first_seen: datetime
    last_seen: datetime  # when the ingest last heard from it (server clock)
    last_time: datetime | None  # time of its newest reading
    last_seq: int | None
    lat: float | None  # position of its newest reading
    lon: float | None
    status_at: datetime | None


def vehicle_states(
    conn: Conn, online_window: timedelta = timedelta(minutes=5)
) -> list[VehicleState]:
    """Every vehicle the ingest knows, by id."""
    if online_window <= timedelta(0):
        raise QueryError("online_window", "must be positive")
    query = (
        "SELECT vehicle, state, last_seen >= now() - %(window)s AS heard_recently,"
        " first_seen, last_seen, last_time, last_seq, last_lat, last_lon, status_at"
        " FROM vehicle ORDER BY vehicle"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, {"window": online_window}).fetchall()
    return [
        VehicleState(
            vehicle=row["vehicle"],
            state=row["state"],
            heard_recently=row["heard_recently"],
            first_seen=row["first_seen"],
            last_seen=row["last_seen"],
            last_time=row["last_time"],
            last_seq=row["last_seq"],
            lat=row["last_lat"],
            lon=row["last_lon"],
            status_at=row["status_at"],
        )
        for row in rows
    ]


def vehicle_known(conn: Conn, vehicle: str) -> bool:
    """Whether the ingest has heard of this vehicle (a reading, a status or health)."""
    row = conn.execute("SELECT 1 FROM vehicle WHERE vehicle = %s", (vehicle,)).fetchone()
    return row is not None
