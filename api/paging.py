"""Cursor paging for every list: an opaque token naming where the next page starts.

Readings page by keyset (store.conditions.Cursor). The other lists are small enough to be built
whole per request and are paged by position in them; the token also carries what fixes the list
(the analysis run for hotspots, the sort), so a token from another query is refused rather than
read against the wrong list. A hotspot run never changes once written, so its positions are
stable; cases page by keyset (their last change and id), as they change under the reader.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from api.errors import ParameterError

_VERSION = 1


def encode(fields: Mapping[str, Any]) -> str:
    raw = json.dumps([_VERSION, dict(fields)], separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(text: str, expect: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a token made by `encode` for a query with the same `expect` fields."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        version, fields = json.loads(raw)
        if version != _VERSION or not isinstance(fields, dict):
            raise ValueError("layout")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ParameterError("cursor", "not a cursor from a previous page of this list") from exc
    for key, value in expect.items():
        if fields.get(key) != value:
            raise ParameterError("cursor", "from another query: start again without it")
    return fields


def position(text: str | None, expect: Mapping[str, Any]) -> int:
    """Where a page starts: 0 without a token, else the token's position (a whole number)."""
    if text is None:
        return 0
    at = decode(text, expect).get("at")
    if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at <= 10_000_000:
        raise ParameterError("cursor", "not a cursor from a previous page of this list")
    return at


def next_position(expect: Mapping[str, Any], at: int, shown: int, total: int) -> str | None:
    """The token of the page after the one shown, or None after the last."""
    return None if at + shown >= total else encode({**expect, "at": at + shown})
