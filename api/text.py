"""Text and JSON documents the database can store, checked where a request is validated.

PostgreSQL refuses a NUL character in `text` and in `jsonb` (even escaped as `\\u0000`), UTF-8
has no lone surrogates, and `jsonb` has no NaN or Infinity: any of them reaching a statement is
a database error, so they are refused as bad input first, with the parameter named. Names and
titles are one line without control characters; notes may also hold tabs and line breaks.
Documents an officer sends along (a case's hotspot, a grid's extra properties) are bounded in
depth and size, since PostgreSQL parses `jsonb` recursively.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "Document",
    "Line",
    "Paragraph",
    "check_document",
    "check_line",
    "check_paragraph",
    "document_problem",
    "text_problem",
]

MAX_DEPTH = 32
MAX_NODES = 20_000
# Integers beyond what PostgreSQL's bigint holds are refused: no officer means them, and json
# encoding of a very long integer fails in Python itself.
_MAX_INT = 2**63
_PARAGRAPH_CONTROLS = frozenset("\t\n\r")


def text_problem(text: str, *, controls: frozenset[str] | None = frozenset()) -> str | None:
    """Why `text` cannot be stored, or None. `controls`: the control characters allowed; None
    allows them all (only NUL and surrogates are refused then)."""
    for position, char in enumerate(text):
        if char == "\x00":
            return f"contains a NUL character at position {position}"
        category = unicodedata.category(char)
        if category == "Cs":
            return f"contains a lone surrogate at position {position}"
        if category == "Cc" and controls is not None and char not in controls:
            return f"contains the control character U+{ord(char):04X} at position {position}"
    return None


def check_line(text: str) -> str:
    problem = text_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


def check_paragraph(text: str) -> str:
    problem = text_problem(text, controls=_PARAGRAPH_CONTROLS)
    if problem is not None:
        raise ValueError(problem)
    return text


def _scalar_problem(value: Any, where: str) -> str | None:
    where = where or "value"
    if isinstance(value, str):
        problem = text_problem(value, controls=None)
        return None if problem is None else f"{where} {problem}"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        ok = -_MAX_INT <= value < _MAX_INT
        return None if ok else f"{where} is an integer outside the 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value}, which JSON cannot hold"
    return f"{where} is not a JSON value"


def document_problem(document: Any) -> str | None:
    """Why a JSON value cannot be stored as `jsonb`, or None."""
    nodes = 0
    stack: list[tuple[Any, str, int]] = [(document, "", 1)]
    while stack:
        value, where, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return f"has more than {MAX_NODES} values"
        if depth > MAX_DEPTH:
            return f"nests deeper than {MAX_DEPTH} levels at {where or 'the top'}"
        if isinstance(value, dict):
            for key, item in value.items():
                problem = (
                    text_problem(key, controls=None) if isinstance(key, str) else "is not a string"
                )
                if problem is not None:
                    return f"key {key!r} {problem}"
                stack.append((item, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        else:
            problem = _scalar_problem(value, where)
            if problem is not None:
                return problem
    return None


def check_document(document: dict[str, Any]) -> dict[str, Any]:
    problem = document_problem(document)
    if problem is not None:
        raise ValueError(problem)
    return document


Line = Annotated[str, AfterValidator(check_line)]
Paragraph = Annotated[str, AfterValidator(check_paragraph)]
Document = Annotated[dict[str, Any], AfterValidator(check_document)]
