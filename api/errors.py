"""Errors as RFC 9457 problem details (`application/problem+json`), from one set of handlers.

Bad input is always a 400 with the offending parameter named; the database being down or too
slow is a 503. Input is checked before it reaches a statement, but should a value still be one
PostgreSQL refuses (SQLSTATE class 22, data exception, or 54, a program limit such as nesting
too deep), the request is answered with a 400, not a server error. The query layer raises `QueryError` in its own vocabulary; this module translates
its parameter names to the API's (`channel` is `pollutant` here, `start` is `from`).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from edge.errors import EnvpatrolError
from store.conditions import QueryError

log = logging.getLogger("envpatrol.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:envpatrol:problem:"
_API_NAMES = {
    "channel": "pollutant",
    "start": "from",
    "end": "to",
    "online_window": "online_window_s",
}


class ParameterProblem(BaseModel):
    parameter: str
    problem: str


class Problem(BaseModel):
    """An error response (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str
    parameter: str | None = None
    errors: list[ParameterProblem] | None = None


class ApiError(EnvpatrolError):
    """An error that carries its HTTP status and the problem details that explain it; its
    `subject` is the status and kind (`404 not-found`), its `problem` the response's detail."""

    def __init__(self, status: int, kind: str, detail: str, parameter: str | None = None) -> None:
        super().__init__(f"{status} {kind}", detail)
        self.status = status
        self.kind = kind
        self.parameter = parameter

    def problem_details(self) -> Problem:
        return Problem(
            type=_TYPE_PREFIX + self.kind,
            title=HTTPStatus(self.status).phrase,
            status=self.status,
            detail=self.problem,
            parameter=self.parameter,
        )


class ParameterError(ApiError):
    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(400, "invalid-parameter", f"{parameter}: {problem}", parameter)


def problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
    )


# For the OpenAPI document: every route may answer with these.
def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its local `$defs` references replaced by the definitions themselves, so
    it stands alone inside the OpenAPI document (where `#/$defs/...` does not resolve)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result


_PROBLEM_CONTENT: dict[str, Any] = {
    PROBLEM_MEDIA_TYPE: {"schema": _inlined(Problem.model_json_schema())}
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Invalid or unknown parameters, each named (problem details)",
        "content": _PROBLEM_CONTENT,
    },
    401: {
        "description": "No API key where the server requires one, or a key that does not "
        "verify (X-API-Key)",
        "content": _PROBLEM_CONTENT,
    },
    403: {
        "description": "The key's role may not do this (admin needed)",
        "content": _PROBLEM_CONTENT,
    },
    404: {"description": "No such resource", "content": _PROBLEM_CONTENT},
    429: {
        "description": "Over the rate limit of the key or address; Retry-After says when to "
        "try again (RateLimit-* headers on every answer)",
        "content": _PROBLEM_CONTENT,
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}},
    },
    "4XX": {"description": "Another client error (problem details)", "content": _PROBLEM_CONTENT},
    503: {"description": "Database unavailable or too slow", "content": _PROBLEM_CONTENT},
}


async def _api_problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return problem_response(exc.problem_details())


async def _query_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QueryError)
    parameter = _API_NAMES.get(exc.subject, exc.subject)
    return problem_response(ParameterError(parameter, exc.problem).problem_details())


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part not in ("query", "path")]
        errors.append(
            ParameterProblem(
                parameter=".".join(location) or "request",
                problem=str(error["msg"]).removeprefix("Value error, "),
            )
        )
    detail = "; ".join(f"{e.parameter}: {e.problem}" for e in errors) or "invalid request"
    problem = Problem(
        type=_TYPE_PREFIX + "invalid-parameter",
        title=HTTPStatus.BAD_REQUEST.phrase,
        status=400,
        detail=detail,
        parameter=errors[0].parameter if len(errors) == 1 else None,
        errors=errors,
    )
    return problem_response(problem)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404:
        detail = f"no resource at {request.url.path}"
    response = problem_response(ApiError(exc.status_code, kind, detail).problem_details())
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _query_canceled(request: Request, exc: Exception) -> JSONResponse:
    log.warning("query cancelled on %s: %s", request.url.path, exc)
    detail = "the query took too long and was cancelled; ask for a shorter time range"
    return problem_response(ApiError(503, "query-timeout", detail).problem_details())


async def _data_refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, psycopg.Error)
    # Logged: input that got past validation to the database is a gap in the checks to close.
    log.warning("database refused a value on %s: %s", request.url.path, exc)
    reason = (exc.diag.message_primary if exc.sqlstate else None) or str(exc).splitlines()[0]
    detail = f"a value in this request cannot be stored or compared: {reason}"
    return problem_response(ApiError(400, "invalid-value", detail).problem_details())


def _refuses_input(exc: psycopg.Error) -> bool:
    """Whether PostgreSQL refused the request's data rather than failing itself: a program
    limit (class 54: nesting too deep, too many columns); data errors have their own handler."""
    return (exc.sqlstate or "").startswith("54")


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, psycopg.OperationalError)
    if _refuses_input(exc):
        return await _data_refused(request, exc)
    log.warning("database unavailable on %s: %s", request.url.path, exc)
    return problem_response(
        ApiError(503, "database-unavailable", "the database cannot be reached").problem_details()
    )


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s", request.url.path, exc_info=exc)
    detail = "an unexpected error; it has been logged"
    return problem_response(ApiError(500, "internal-error", detail).problem_details())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_problem)
    app.add_exception_handler(QueryError, _query_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(psycopg.errors.QueryCanceled, _query_canceled)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(psycopg.DataError, _data_refused)
    app.add_exception_handler(Exception, _internal_error)
