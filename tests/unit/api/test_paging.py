from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import paging
from api.errors import ParameterError

QUERY = {"list": "hotspots", "run": 7, "sort": "severity"}


@given(st.integers(0, 10_000_000), st.integers(0, 1000), st.integers(0, 10_000_000))
def test_a_token_gives_back_its_position_for_its_own_query(at: int, shown: int, total: int) -> None:
    token = paging.next_position(QUERY, at, shown, total)
    if at + shown >= total:
        assert token is None
    else:
        assert token is not None
        assert paging.position(token, QUERY) == at + shown
        with pytest.raises(ParameterError):
            paging.position(token, {**QUERY, "run": 8})


@given(st.text(max_size=200))
def test_any_text_is_a_position_or_a_400_naming_the_cursor(text: str) -> None:
    refused: ParameterError | None = None
    try:
        at = paging.position(text, QUERY)
    except ParameterError as exc:
        refused = exc
    if refused is not None:
        assert refused.parameter == "cursor"
    else:
        assert 0 <= at <= 10_000_000


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=5))
def test_forged_tokens_with_the_right_layout_are_refused_unless_they_match(
    fields: dict[str, object],
) -> None:
    token = paging.encode(fields)
    refused: ParameterError | None = None
    try:
        paging.position(token, QUERY)
    except ParameterError as exc:
        refused = exc
    # a forged token either names a position of this very query or is a 400 about the cursor
    assert refused is None or refused.parameter == "cursor"
