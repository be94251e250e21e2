"""Cases: a hotspot officers act on, its status workflow and its history.

open -> dispatched -> treated -> verified -> closed, with the ways back an officer needs:
a dispatch can be withdrawn (dispatched -> open), a treatment that did not work is dispatched
again (treated/verified -> dispatched), any case can be closed (e.g. a false alarm) and a closed
one reopened. `verified` is reached only by running the before/after test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from edge.errors import EnvpatrolError

Conn = psycopg.Connection[Any]
Status = Literal["open", "dispatched", "treated", "verified", "closed"]
STATUSES: tuple[Status, ...] = ("open", "dispatched", "treated", "verified", "closed")

TRANSITIONS: Mapping[str, frozenset[str]] = {
    "open": frozenset({"dispatched", "closed"}),
    "dispatched": frozenset({"treated", "open", "closed"}),
    "treated": frozenset({"verified", "dispatched", "closed"}),
    "verified": frozenset({"verified", "dispatched", "closed"}),
    "closed": frozenset({"open"}),
}


class TransitionError(EnvpatrolError, ValueError):
    """A status change the case's workflow does not allow (TRANSITIONS)."""

    def __init__(self, current: str, wanted: str) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none"
        super().__init__("status", f"a {current} case cannot become {wanted}; allowed: {allowed}")
        self.current = current
        self.wanted = wanted


def check_transition(current: str, wanted: str) -> None:
    if wanted not in TRANSITIONS.get(current, frozenset()):
        raise TransitionError(current, wanted)


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    at: datetime
    kind: str
    from_status: str | None
    to_status: str | None
    note: str | None
    detail: dict[str, Any] | None
    actor: str


@dataclass(frozen=True, slots=True)
class Case:
    id: int
    pollutant: str
    cell: str
    lat: float
    lon: float
    grid_id: int | None
    title: str
    status: str
    hotspot: dict[str, Any]
    treated_at: datetime | None
    verification: dict[str, Any] | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    events: list[Event]


@dataclass(frozen=True, slots=True)
class NewCase:
    pollutant: str
    cell: str
    lat: float
    lon: float
    grid_id: int | None
    title: str
    hotspot: dict[str, Any]
    note: str | None


_CASE_COLUMNS = (
    "id, pollutant, cell, lat, lon, grid_id, title, status, hotspot, treated_at, verification,"
    " created_by, created_at, updated_at"
)


def _event(conn: Conn, case_id: int, kind: str, actor: str, **fields: Any) -> None:
    detail = fields.get("detail")
    conn.execute(
        "INSERT INTO case_event (case_id, kind, from_status, to_status, note, detail, actor)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            case_id,
            kind,
            fields.get("from_status"),
            fields.get("to_status"),
            fields.get("note"),
            None if detail is None else Jsonb(detail),
            actor,
        ),
    )


def create(conn: Conn, new: NewCase, actor: str) -> int:
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO hotspot_case"
            " (pollutant, cell, lat, lon, grid_id, title, hotspot, created_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                new.pollutant,
                new.cell,
                new.lat,
                new.lon,
                new.grid_id,
                new.title,
                Jsonb(new.hotspot),
                actor,
            ),
        ).fetchone()
        assert row is not None
        case_id = int(row[0])
        _event(conn, case_id, "created", actor, to_status="open", note=new.note)
    return case_id


def one(conn: Conn, case_id: int) -> Case | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_CASE_COLUMNS} FROM hotspot_case WHERE id = %s", (case_id,)
        ).fetchone()
        if row is None:
            return None
        events = cur.execute(
            "SELECT id, at, kind, from_status, to_status, note, detail, actor"
            " FROM case_event WHERE case_id = %s ORDER BY id",
            (case_id,),
        ).fetchall()
    return Case(**row, events=[Event(**e) for e in events])


@dataclass(frozen=True, slots=True)
class CaseFilters:
    status: str | None = None
    grid_id: int | None = None
    pollutant: str | None = None


def listing(conn: Conn, filters: CaseFilters, limit: int, offset: int) -> tuple[int, list[Case]]:
    """Cases newest first, without their events; and how many match in all."""
    where = ["TRUE"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if filters.status is not None:
        where.append("status = %(status)s")
        params["status"] = filters.status
    if filters.grid_id is not None:
        where.append("grid_id = %(grid_id)s")
        params["grid_id"] = filters.grid_id
    if filters.pollutant is not None:
        where.append("pollutant = %(pollutant)s")
        params["pollutant"] = filters.pollutant
    condition = " AND ".join(where)
    with conn.cursor(row_factory=dict_row) as cur:
        total_row = cur.execute(
            f"SELECT count(*) AS n FROM hotspot_case WHERE {condition}", params
        ).fetchone()
        rows = cur.execute(
            f"SELECT {_CASE_COLUMNS} FROM hotspot_case WHERE {condition}"
            " ORDER BY updated_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s",
            params,
        ).fetchall()
    total = 0 if total_row is None else int(total_row["n"])
    return total, [Case(**row, events=[]) for row in rows]


def _locked_status(conn: Conn, case_id: int) -> str | None:
    row = conn.execute(
        "SELECT status FROM hotspot_case WHERE id = %s FOR UPDATE", (case_id,)
    ).fetchone()
    return None if row is None else str(row[0])


class CaseNotFoundError(EnvpatrolError, LookupError):
    """No case with that id."""

    def __init__(self, case_id: int) -> None:
        super().__init__(f"case {case_id}", "not found")
        self.case_id = case_id


def update(
    conn: Conn,
    case_id: int,
    actor: str,
    *,
    status: str | None = None,
    note: str | None = None,
    treated_at: datetime | None = None,
) -> None:
    """Change status (checked against TRANSITIONS), add a note, set the treatment date."""
    with conn.transaction():
        current = _locked_status(conn, case_id)
        if current is None:
            raise CaseNotFoundError(case_id)
        if status is not None and status != current:
            check_transition(current, status)
            conn.execute(
                "UPDATE hotspot_case SET status = %s, updated_at = now() WHERE id = %s",
                (status, case_id),
            )
            _event(conn, case_id, "status", actor, from_status=current, to_status=status, note=note)
            note = None  # recorded with the status change
        if treated_at is not None:
            conn.execute(
                "UPDATE hotspot_case SET treated_at = %s, updated_at = now() WHERE id = %s",
                (treated_at, case_id),
            )
            _event(conn, case_id, "note", actor, detail={"treated_at": treated_at.isoformat()})
        if note is not None:
            conn.execute("UPDATE hotspot_case SET updated_at = now() WHERE id = %s", (case_id,))
            _event(conn, case_id, "note", actor, note=note)


def record_verification(conn: Conn, case_id: int, result: dict[str, Any], actor: str) -> None:
    """Store the before/after result on the case and mark it verified."""
    with conn.transaction():
        current = _locked_status(conn, case_id)
        if current is None:
            raise CaseNotFoundError(case_id)
        check_transition(current, "verified")
        conn.execute(
            "UPDATE hotspot_case SET status = 'verified', verification = %s, updated_at = now()"
            " WHERE id = %s",
            (Jsonb(result), case_id),
        )
        _event(
            conn,
            case_id,
            "verification",
            actor,
            from_status=current,
            to_status="verified",
            detail=result,
        )
