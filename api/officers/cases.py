"""Cases: a hotspot officers act on, its status workflow and its history.

open -> dispatched -> treated -> verified -> closed, with the ways back an officer needs:
a dispatch can be withdrawn (dispatched -> open), a treatment that did not work is dispatched
again (treated/verified -> dispatched), any case can be closed (e.g. a false alarm) and a closed
one reopened. `verified` is reached only by running the before/after test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from api.scopes import KeyScope
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
    assignee: str | None = None
    assignee_kind: str | None = None  # department or grid_worker
    deadline: datetime | None = None
    attachments: list[Attachment] = field(default_factory=list)

    def overdue(self, now: datetime) -> bool:
        """Past its deadline and not yet treated, verified or closed."""
        return (
            self.deadline is not None
            and self.deadline < now
            and self.status in ("open", "dispatched")
        )


@dataclass(frozen=True, slots=True)
class Attachment:
    """A photo stored with a case (the content is read on its own, by id)."""

    id: int
    name: str
    media_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime


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
    " created_by, created_at, updated_at, assignee, assignee_kind, deadline"
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


def scope_condition(scope: KeyScope | None) -> tuple[str, tuple[Any, ...]]:
    """` AND ...` keeping the cases of `scope`'s grids (the grid a case was opened in, named by
    id or by its sub-district), and its parameters; nothing without a scope. A case outside
    every grid is seen only by keys without a scope."""
    if scope is None:
        return "", ()
    return (
        " AND grid_id IN (SELECT id FROM management_grid"
        " WHERE id = ANY(%s) OR subdistrict = ANY(%s))",
        (sorted(scope.grid_ids), sorted(scope.subdistricts)),
    )


def one(conn: Conn, case_id: int, scope: KeyScope | None = None) -> Case | None:
    """The case, or None when there is none a key with `scope` may see."""
    in_scope, scope_params = scope_condition(scope)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_CASE_COLUMNS} FROM hotspot_case WHERE id = %s{in_scope}",
            (case_id, *scope_params),
        ).fetchone()
        if row is None:
            return None
        events = cur.execute(
            "SELECT id, at, kind, from_status, to_status, note, detail, actor"
            " FROM case_event WHERE case_id = %s ORDER BY id",
            (case_id,),
        ).fetchall()
        files = cur.execute(
            "SELECT id, name, media_type, size, sha256, uploaded_by, uploaded_at"
            " FROM case_attachment WHERE case_id = %s ORDER BY id",
            (case_id,),
        ).fetchall()
    return Case(
        **row, events=[Event(**e) for e in events], attachments=[Attachment(**f) for f in files]
    )


@dataclass(frozen=True, slots=True)
class CaseFilters:
    status: str | None = None
    grid_id: int | None = None
    pollutant: str | None = None
    overdue: bool = False  # only open or dispatched cases past their deadline
    assignee: str | None = None
    scope: KeyScope | None = None  # only the cases a key limited to these grids may see


def listing(
    conn: Conn,
    filters: CaseFilters,
    limit: int,
    offset: int = 0,
    after: tuple[datetime, int] | None = None,
) -> tuple[int, list[Case]]:
    """Cases most recently changed first, without their events; and how many match in all.
    `after`: the (updated_at, id) of the last case of the previous page (keyset paging)."""
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
    if filters.overdue:
        where.append("deadline < now() AND status IN ('open', 'dispatched')")
    if filters.assignee is not None:
        where.append("assignee = %(assignee)s")
        params["assignee"] = filters.assignee
    if filters.scope is not None:
        where.append(
            "grid_id IN (SELECT id FROM management_grid"
            " WHERE id = ANY(%(scope_grids)s) OR subdistrict = ANY(%(scope_subdistricts)s))"
        )
        params["scope_grids"] = sorted(filters.scope.grid_ids)
        params["scope_subdistricts"] = sorted(filters.scope.subdistricts)
    condition = " AND ".join(where)
    page_condition = condition
    if after is not None:
        page_condition += " AND (updated_at, id) < (%(after_at)s, %(after_id)s)"
        params.update(after_at=after[0], after_id=after[1])
    with conn.cursor(row_factory=dict_row) as cur:
        total_row = cur.execute(
            f"SELECT count(*) AS n FROM hotspot_case WHERE {condition}", params
        ).fetchone()
        rows = cur.execute(
            f"SELECT {_CASE_COLUMNS} FROM hotspot_case WHERE {page_condition}"
            " ORDER BY updated_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s",
            params,
        ).fetchall()
    total = 0 if total_row is None else int(total_row["n"])
    return total, [Case(**row, events=[]) for row in rows]


def _locked_status(conn: Conn, case_id: int, scope: KeyScope | None) -> str | None:
    """The case's status, its row locked; None when there is no case `scope` may change."""
    in_scope, scope_params = scope_condition(scope)
    row = conn.execute(
        f"SELECT status FROM hotspot_case WHERE id = %s{in_scope} FOR UPDATE",
        (case_id, *scope_params),
    ).fetchone()
    return None if row is None else str(row[0])


class CaseNotFoundError(EnvpatrolError, LookupError):
    """No case with that id."""

    def __init__(self, case_id: int) -> None:
        super().__init__(f"case {case_id}", "not found")
        self.case_id = case_id


@dataclass(frozen=True, slots=True)
class Assignment:
    """Who a case is given to, and by when; None leaves a field as it is, "" clears it."""

    assignee: str | None = None
    assignee_kind: str | None = None
    deadline: datetime | None = None
    clear_deadline: bool = False

    def given(self) -> bool:
        return (
            self.assignee is not None
            or self.assignee_kind is not None
            or self.deadline is not None
            or self.clear_deadline
        )


def update(
    conn: Conn,
    case_id: int,
    actor: str,
    *,
    status: str | None = None,
    note: str | None = None,
    treated_at: datetime | None = None,
    assignment: Assignment | None = None,
    now: datetime | None = None,
    scope: KeyScope | None = None,
) -> None:
    """Change status (checked against TRANSITIONS), add a note, set the treatment date, assign.

    Each move to `treated` renews the treatment date (to `treated_at`, or `now`): a case
    treated again after a verification is verified against its new treatment. A case sent back
    to `dispatched` or reopened drops its last verification from the case (the history keeps it).
    """
    with conn.transaction():
        current = _locked_status(conn, case_id, scope)
        if current is None:
            raise CaseNotFoundError(case_id)
        if status is not None and status != current:
            check_transition(current, status)
            conn.execute(
                "UPDATE hotspot_case SET status = %s, updated_at = now() WHERE id = %s",
                (status, case_id),
            )
            if status in ("dispatched", "open"):
                conn.execute(
                    "UPDATE hotspot_case SET verification = NULL WHERE id = %s", (case_id,)
                )
            if status == "treated" and treated_at is None:
                treated_at = now or datetime.now(UTC)
            _event(conn, case_id, "status", actor, from_status=current, to_status=status, note=note)
            note = None  # recorded with the status change
        if assignment is not None and assignment.given():
            _assign(conn, case_id, actor, assignment)
        if treated_at is not None:
            conn.execute(
                "UPDATE hotspot_case SET treated_at = %s, updated_at = now() WHERE id = %s",
                (treated_at, case_id),
            )
            _event(conn, case_id, "note", actor, detail={"treated_at": treated_at.isoformat()})
        if note is not None:
            conn.execute("UPDATE hotspot_case SET updated_at = now() WHERE id = %s", (case_id,))
            _event(conn, case_id, "note", actor, note=note)


def _assign(conn: Conn, case_id: int, actor: str, given: Assignment) -> None:
    sets: list[str] = []
    values: list[Any] = []
    detail: dict[str, Any] = {}
    if given.assignee is not None:
        sets.append("assignee = %s")
        values.append(given.assignee or None)
        detail["assignee"] = given.assignee or None
    if given.assignee_kind is not None:
        sets.append("assignee_kind = %s")
        values.append(given.assignee_kind or None)
        detail["assignee_kind"] = given.assignee_kind or None
    if given.deadline is not None or given.clear_deadline:
        sets.append("deadline = %s")
        values.append(given.deadline)
        detail["deadline"] = None if given.deadline is None else given.deadline.isoformat()
    conn.execute(
        f"UPDATE hotspot_case SET {', '.join(sets)}, updated_at = now() WHERE id = %s",
        (*values, case_id),
    )
    _event(conn, case_id, "assignment", actor, detail=detail)


MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
# The signatures the content must start with, per accepted media type.
_SIGNATURES: Mapping[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/webp": (b"RIFF",),  # and "WEBP" at offset 8, checked below
}


class AttachmentError(EnvpatrolError, ValueError):
    """A photo the case cannot take: too large, empty, or not what its type says."""


def check_photo(media_type: str, content: bytes) -> None:
    """A JPEG, PNG or WebP image within MAX_ATTACHMENT_BYTES whose bytes match its type."""
    if media_type not in _SIGNATURES:
        raise AttachmentError(
            "content-type", f"{media_type!r} is not one of {', '.join(sorted(_SIGNATURES))}"
        )
    if not content:
        raise AttachmentError("body", "empty")
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise AttachmentError(
            "body", f"{len(content)} bytes; a photo may have at most {MAX_ATTACHMENT_BYTES}"
        )
    matches = any(content.startswith(sig) for sig in _SIGNATURES[media_type])
    if media_type == "image/webp":
        matches = matches and content[8:12] == b"WEBP"
    if not matches:
        raise AttachmentError("body", f"the content is not a {media_type} image")


def attach(
    conn: Conn,
    case_id: int,
    actor: str,
    name: str,
    media_type: str,
    content: bytes,
    scope: KeyScope | None = None,
) -> int:
    """Store a checked photo with the case (check_photo); its id."""
    check_photo(media_type, content)
    with conn.transaction():
        if _locked_status(conn, case_id, scope) is None:
            raise CaseNotFoundError(case_id)
        row = conn.execute(
            "INSERT INTO case_attachment (case_id, name, media_type, size, sha256, content,"
            " uploaded_by) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                case_id,
                name,
                media_type,
                len(content),
                hashlib.sha256(content).hexdigest(),
                content,
                actor,
            ),
        ).fetchone()
        assert row is not None
        conn.execute("UPDATE hotspot_case SET updated_at = now() WHERE id = %s", (case_id,))
        _event(
            conn,
            case_id,
            "attachment",
            actor,
            detail={
                "id": int(row[0]),
                "name": name,
                "media_type": media_type,
                "size": len(content),
            },
        )
    return int(row[0])


def attachment_content(
    conn: Conn, case_id: int, attachment_id: int, scope: KeyScope | None = None
) -> tuple[str, bytes] | None:
    """A photo's media type and bytes, or None (also when `scope` may not see the case)."""
    in_scope, scope_params = scope_condition(scope)
    row = conn.execute(
        "SELECT media_type, content FROM case_attachment WHERE case_id = %s AND id = %s"
        f" AND case_id IN (SELECT id FROM hotspot_case WHERE id = %s{in_scope})",
        (case_id, attachment_id, case_id, *scope_params),
    ).fetchone()
    return None if row is None else (str(row[0]), bytes(row[1]))


def record_verification(
    conn: Conn,
    case_id: int,
    result: dict[str, Any],
    actor: str,
    scope: KeyScope | None = None,
) -> None:
    """Store the before/after result on the case and mark it verified."""
    with conn.transaction():
        current = _locked_status(conn, case_id, scope)
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
