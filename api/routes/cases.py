"""`/v1/cases`: hotspots officers act on, from opening to verified treatment."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, cast

import h3
from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from api import paging
from api.auth import Admin, Caller, Reader, reader, shown_actor
from api.database import DbSession
from api.envelope import Envelope, Meta
from api.errors import PROBLEM_RESPONSES, ApiError, ParameterError
from api.officers import cases, grids
from api.officers.cases import Case, CaseFilters, CaseNotFoundError, TransitionError
from api.params import cell_index, hotspot_channel, parse_cell, parse_instant
from api.scopes import GridView, KeyScope, visibility
from api.text import Document, Line, Paragraph
from hotspots.verification import BeforeAfterRequest, BeforeAfterTest
from store.analysis_meta import read_analysis
from store.channels import channel_spec

router = APIRouter(
    prefix="/v1", tags=["cases"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)

StatusName = Literal["open", "dispatched", "treated", "verified", "closed"]
CaseId = Annotated[int, Path(ge=1, le=2**62, description="Case id.")]


class EventOut(BaseModel):
    id: int
    at: datetime
    kind: str = Field(description="created, status, note or verification.")
    from_status: str | None
    to_status: str | None
    note: str | None
    detail: dict[str, Any] | None
    actor: str = Field(
        description="The name of the officer's API key; for admins also its key id, "
        "`name (key id)`."
    )


class AttachmentOut(BaseModel):
    id: int
    name: str
    media_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime
    url: str = Field(description="GET it for the photo itself.")


class CaseOut(BaseModel):
    id: int
    pollutant: str
    cell: str
    lat: float
    lon: float
    grid_id: int | None
    title: str
    status: str
    allowed_next: list[str] = Field(description="Statuses this case may move to.")
    hotspot: dict[str, Any] = Field(description="The hotspot as it was when the case opened.")
    treated_at: datetime | None
    verification: dict[str, Any] | None = Field(description="The last before/after result.")
    created_by: str = Field(description="As an event's `actor`.")
    created_at: datetime
    updated_at: datetime
    assignee: str | None = Field(description="The department or grid worker it is given to.")
    assignee_kind: str | None = Field(description="department or grid_worker.")
    deadline: datetime | None
    overdue: bool = Field(description="Past its deadline and still open or dispatched.")
    attachments: list[AttachmentOut] = Field(description="Photos stored with the case.")
    events: list[EventOut]


def case_out(case: Case, to: Caller) -> CaseOut:
    """`case` as `to` may see it (key ids only for admins)."""
    return CaseOut(
        id=case.id,
        pollutant=case.pollutant,
        cell=case.cell,
        lat=case.lat,
        lon=case.lon,
        grid_id=case.grid_id,
        title=case.title,
        status=case.status,
        allowed_next=sorted(cases.TRANSITIONS[case.status] - {"verified"}),
        hotspot=case.hotspot,
        treated_at=case.treated_at,
        verification=case.verification,
        created_by=shown_actor(case.created_by, to),
        created_at=case.created_at,
        updated_at=case.updated_at,
        assignee=case.assignee,
        assignee_kind=case.assignee_kind,
        deadline=case.deadline,
        overdue=case.overdue(datetime.now(UTC)),
        attachments=[
            AttachmentOut(
                **{**asdict(a), "uploaded_by": shown_actor(a.uploaded_by, to)},
                url=f"/v1/cases/{case.id}/photos/{a.id}",
            )
            for a in case.attachments
        ],
        events=[EventOut(**{**asdict(e), "actor": shown_actor(e.actor, to)}) for e in case.events],
    )


class CaseIn(BaseModel):
    pollutant: str = Field(description="A pollutant with hotspots (see /v1/pollutants).")
    cell: str = Field(description="H3 index of the hotspot cell.", min_length=15, max_length=16)
    title: Line | None = Field(default=None, max_length=300)
    note: Paragraph | None = Field(default=None, max_length=5000)
    hotspot: Document = Field(
        default_factory=dict, description="The hotspot's properties as the officer saw them."
    )


class CaseUpdate(BaseModel):
    status: StatusName | None = Field(
        default=None, description="New status; `verified` only through /verify."
    )
    note: Paragraph | None = Field(default=None, min_length=1, max_length=5000)
    treated_at: str | None = Field(
        default=None, description="ISO 8601 date or time of the treatment; UTC if no offset."
    )
    assignee: Line | None = Field(
        default=None, max_length=200, description='A department or grid worker; "" clears it.'
    )
    assignee_kind: Literal["department", "grid_worker", ""] | None = None
    deadline: str | None = Field(
        default=None, description='ISO 8601 date or time it is due by; "" clears it.'
    )


class VerifyIn(BaseModel):
    window_days: float = Field(default=30, gt=0, le=365, allow_inf_nan=False)
    min_passes: int = Field(default=3, ge=1, le=1000)


class CasesMeta(Meta):
    total: int
    limit: int
    offset: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


def hotspot_cells(hotspot: dict[str, Any]) -> tuple[str, ...]:
    """The cells of the hotspot recorded with a case (its `cells`), where they are valid."""
    cells = hotspot.get("cells")
    if not isinstance(cells, list):
        return ()
    found = (cell_index(c) for c in cells if isinstance(c, str))
    return tuple(c for c in found if c is not None)


def no_case(case_id: int) -> ApiError:
    """The answer for a case that does not exist, and for one outside the caller's grids."""
    return ApiError(404, "not-found", f"no case {case_id}")


def _load(db: DbSession, case_id: int, scope: KeyScope | None, admin: bool = False) -> Case:
    conn = db.admin() if admin else db.connection()
    case = cases.one(conn, case_id, scope)
    if case is None:
        raise no_case(case_id)
    return case


GRIDS = visibility("grids")


@router.get("/cases", summary="Cases, most recently changed first", openapi_extra=GRIDS)
def list_cases(
    *,
    db: DbSession,
    who: Reader,
    status: Annotated[StatusName | None, Query(description="Only cases in this status.")] = None,
    grid: Annotated[int | None, Query(ge=1, le=2**62, description="Only this grid's.")] = None,
    pollutant: Annotated[str | None, Query(description="Only this pollutant's.")] = None,
    overdue: Annotated[
        bool, Query(description="Only open or dispatched cases past their deadline.")
    ] = False,
    assignee: Annotated[str | None, Query(max_length=200, description="Only theirs.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=2000, description="`meta.next_cursor` of the previous page.")
    ] = None,
    offset: Annotated[
        int, Query(ge=0, le=1_000_000, description="Deprecated: use `cursor`.", deprecated=True)
    ] = 0,
) -> Envelope[CasesMeta, CaseOut]:
    if pollutant is not None:
        channel_spec(pollutant)
    fixed = {"list": "cases", "where": [status, grid, pollutant, overdue, assignee]}
    after = None
    if cursor is not None:
        fields = paging.decode(cursor, fixed)
        try:
            after = (datetime.fromisoformat(str(fields["u"])), int(fields["id"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ParameterError(
                "cursor", "not a cursor from a previous page of this list"
            ) from exc
        offset = 0
    total, found = cases.listing(
        db.connection(),
        CaseFilters(status, grid, pollutant, overdue=overdue, assignee=assignee, scope=who.scope),
        limit + 1,
        offset,
        after,
    )
    more = len(found) > limit
    found = found[:limit]
    token = (
        paging.encode({**fixed, "u": found[-1].updated_at.isoformat(), "id": found[-1].id})
        if more
        else None
    )
    return Envelope[CasesMeta, CaseOut](
        meta=CasesMeta(
            found=len(found), total=total, limit=limit, offset=offset, next_cursor=token
        ),
        results=[case_out(c, who) for c in found],
    )


@router.get("/cases/{case_id}", summary="One case and its history", openapi_extra=GRIDS)
def get_case(case_id: CaseId, db: DbSession, who: Reader) -> CaseOut:
    return case_out(_load(db, case_id, who.scope), who)


_CASE_EXAMPLE = {
    "pollutant": "cooking_fume",
    "cell": "8a31aa5a9a47fff",
    "title": "Restaurant street, exhaust over the pavement",
    "note": "Seen on 9 of 12 passes at lunch",
}


@router.post(
    "/cases", status_code=201, summary="Open a case for a hotspot (admin)", openapi_extra=GRIDS
)
def create_case(
    body: Annotated[CaseIn, Body(examples=[_CASE_EXAMPLE])], db: DbSession, who: Admin
) -> CaseOut:
    """The case takes the management grid holding the cell's centre. A key limited to grids
    opens cases only inside them: a cell elsewhere is a 403."""
    spec = hotspot_channel(body.pollutant)
    cell = parse_cell(body.cell, "cell")
    conn = db.admin()
    resolution = read_analysis(conn).resolution
    if h3.get_resolution(cell) != resolution:
        raise ParameterError("cell", f"cells here are at H3 resolution {resolution}")
    lat, lon = h3.cell_to_latlng(cell)
    seen, grid = GridView.of(grids.all_grids(conn), who.scope).place(lon, lat)
    if not seen:
        raise ApiError(
            403, "out-of-scope", f"cell {cell} lies outside this API key's grids", "cell"
        )
    title = body.title or f"{spec.label} hotspot {cell}"
    new = cases.NewCase(
        pollutant=spec.name,
        cell=cell,
        lat=lat,
        lon=lon,
        grid_id=None if grid is None else grid.id,
        title=title,
        hotspot=body.hotspot,
        note=body.note,
    )
    case_id = cases.create(conn, new, who.actor)
    return case_out(_load(db, case_id, who.scope, admin=True), who)


@router.patch(
    "/cases/{case_id}",
    summary="Change status, add a note or a treatment date (admin)",
    openapi_extra=GRIDS,
)
def update_case(
    case_id: CaseId,
    body: Annotated[
        CaseUpdate,
        Body(examples=[{"status": "treated", "treated_at": "2026-05-20", "note": "Hood fitted"}]),
    ],
    db: DbSession,
    who: Admin,
) -> CaseOut:
    """Status changes are checked: open -> dispatched -> treated -> (verify) -> closed, with
    the ways back listed in each case's `allowed_next`. A conflict is a 409."""
    given = body.model_dump(exclude_none=True)
    if not given:
        raise ParameterError(
            "body", "give at least one of status, note, treated_at, assignee, deadline"
        )
    if body.status == "verified":
        raise ApiError(409, "conflict", f"a case is verified by POST /v1/cases/{case_id}/verify")
    treated_at = None if body.treated_at is None else parse_instant(body.treated_at, "treated_at")
    if treated_at is not None and treated_at > datetime.now(UTC) + timedelta(days=1):
        raise ParameterError("treated_at", "a treatment date cannot be in the future")
    deadline = None if not body.deadline else parse_instant(body.deadline, "deadline")
    assignment = cases.Assignment(
        assignee=body.assignee,
        assignee_kind=body.assignee_kind,
        deadline=deadline,
        clear_deadline=body.deadline == "",
    )
    try:
        cases.update(
            db.admin(),
            case_id,
            who.actor,
            status=body.status,
            note=body.note,
            treated_at=treated_at,
            assignment=assignment,
            scope=who.scope,
        )
    except CaseNotFoundError as exc:
        raise no_case(case_id) from exc
    except TransitionError as exc:
        raise ApiError(409, "conflict", exc.problem) from exc
    return case_out(_load(db, case_id, who.scope, admin=True), who)


@router.post(
    "/cases/{case_id}/verify",
    summary="Run the before/after test and record it (admin)",
    openapi_extra=GRIDS,
)
def verify_case(
    case_id: CaseId,
    request: Request,
    db: DbSession,
    who: Admin,
    body: Annotated[VerifyIn | None, Body(examples=[{"window_days": 30, "min_passes": 3}])] = None,
) -> CaseOut:
    """Compares the hotspot cell's passes before and after the treatment date and stores the
    result on the case, which becomes `verified` (whatever the verdict: read `verification`).
    The case must be treated (or verified, to run again) and have a treatment date. The test
    (hotspots.analysis.beforeafter) compares per-pass enhancements over the hotspot's cells (those
    recorded with the case, else its cell): effect, bootstrap interval, Mann-Whitney p-value and
    passes on each side are recorded on the case."""
    options = body or VerifyIn()
    case = _load(db, case_id, who.scope, admin=True)
    if case.status not in ("treated", "verified") or case.treated_at is None:
        raise ApiError(
            409, "conflict", f"case {case_id} is {case.status}; only a treated case can be verified"
        )
    test = cast(BeforeAfterTest, request.app.state.before_after)
    result = test(
        db.connection(),
        BeforeAfterRequest(
            cell=case.cell,
            pollutant=case.pollutant,
            treated_at=case.treated_at,
            window=timedelta(days=options.window_days),
            min_passes=options.min_passes,
            cells=hotspot_cells(case.hotspot),
        ),
    )
    try:
        cases.record_verification(db.admin(), case_id, result.to_json(), who.actor, who.scope)
    except CaseNotFoundError as exc:  # its grid deleted meanwhile
        raise no_case(case_id) from exc
    except TransitionError as exc:  # changed by someone else meanwhile
        raise ApiError(409, "conflict", exc.problem) from exc
    return case_out(_load(db, case_id, who.scope, admin=True), who)


async def photo_body(request: Request) -> bytes:
    """The request's body, refused as soon as it passes the photo size limit (413)."""
    limit = cases.MAX_ATTACHMENT_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too-large", f"a photo may have at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too-large", f"a photo may have at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/cases/{case_id}/photos",
    status_code=201,
    summary="Store a photo with the case (admin): the body is the image itself",
    openapi_extra=GRIDS,
)
def add_photo(
    case_id: CaseId,
    request: Request,
    content: Annotated[bytes, Depends(photo_body)],
    db: DbSession,
    who: Admin,
    name: Annotated[Line, Query(min_length=1, max_length=200, description="File name.")] = "photo",
) -> CaseOut:
    """JPEG, PNG or WebP (the Content-Type header, checked against the bytes), at most 5 MiB;
    stored in the database with the case and listed in its history."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        cases.attach(db.admin(), case_id, who.actor, name, media_type, content, who.scope)
    except cases.AttachmentError as exc:
        status = 415 if exc.subject == "content-type" else 400
        raise ApiError(status, "invalid-photo", str(exc), exc.subject) from exc
    except CaseNotFoundError as exc:
        raise no_case(case_id) from exc
    return case_out(_load(db, case_id, who.scope, admin=True), who)


@router.get(
    "/cases/{case_id}/photos/{photo_id}", summary="One photo of a case", openapi_extra=GRIDS
)
def get_photo(
    case_id: CaseId,
    photo_id: Annotated[int, Path(ge=1, le=2**62)],
    db: DbSession,
    who: Reader,
) -> Response:
    found = cases.attachment_content(db.connection(), case_id, photo_id, who.scope)
    if found is None:
        raise ApiError(404, "not-found", f"no photo {photo_id} of case {case_id}")
    media_type, content = found
    return Response(
        content,
        media_type=media_type,
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
