"""Unknown query parameters are an error, not silently ignored.

`/v1/cells?bbox=...` on a route without `bbox`, or `polutant=pm25`, used to return everything,
which a caller reads as an answer. Every `/v1` route now checks the names in the query string
against the query parameters it declares (through its dependencies too) and answers a 400 that
names the unknown ones and lists the known.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.errors import ApiError

_KNOWN: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> frozenset[str]:
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        names.update(field.alias for field in current.query_params)
        pending.extend(current.dependencies)
    return frozenset(names)


def known_parameters(route: APIRoute) -> frozenset[str]:
    """The query parameter names a route takes (cached per route)."""
    key = id(route)
    if key not in _KNOWN:
        _KNOWN[key] = _query_names(route.dependant)
    return _KNOWN[key]


def reject_unknown_query(request: Request) -> None:
    """Dependency of every /v1 router: a 400 naming each query parameter the route lacks."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = known_parameters(route)
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        takes = ", ".join(sorted(known)) if known else "no query parameters"
        raise ApiError(
            400,
            "unknown-parameter",
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; {request.url.path} takes {takes}",
            unknown[0],
        )
