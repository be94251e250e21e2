"""Text and documents the database can store: what is refused, and that what passes can be
encoded as PostgreSQL takes it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from api.text import (
    MAX_DEPTH,
    Document,
    Line,
    Paragraph,
    check_document,
    document_problem,
    text_problem,
)

UNSTORABLE = ["\x00", "\ud800", "\udfff"]
ANY_CHARACTER = st.characters(exclude_categories=())  # lone surrogates included


def storable_in_postgresql(text: str) -> bool:
    """What PostgreSQL's text and jsonb take: UTF-8 without NUL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


@given(st.text(alphabet=ANY_CHARACTER, max_size=60))
def test_text_that_passes_as_a_document_string_is_storable(text: str) -> None:
    assert (text_problem(text, controls=None) is None) == storable_in_postgresql(text)


@given(st.text(alphabet=ANY_CHARACTER, max_size=60))
def test_a_line_has_no_control_characters_and_a_paragraph_only_tabs_and_breaks(text: str) -> None:
    controls = {c for c in text if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F}
    assert (text_problem(text) is None) == (not controls and storable_in_postgresql(text))
    paragraph_ok = controls <= set("\t\n\r") and storable_in_postgresql(text)
    assert (text_problem(text, controls=frozenset("\t\n\r")) is None) == paragraph_ok


@pytest.mark.parametrize("bad", UNSTORABLE)
def test_the_problem_names_what_and_where(bad: str) -> None:
    problem = text_problem(f"ab{bad}c")
    assert problem is not None
    assert "position 2" in problem


class Form(BaseModel):
    title: Line | None = None
    note: Paragraph | None = None
    hotspot: Document = {}


@given(
    st.text(alphabet=ANY_CHARACTER, max_size=20),
    st.text(alphabet=ANY_CHARACTER, max_size=20),
    st.dictionaries(
        st.text(alphabet=ANY_CHARACTER, max_size=5), st.text(ANY_CHARACTER, max_size=5), max_size=3
    ),
)
def test_models_refuse_with_a_validation_error_never_another(
    title: str, note: str, hotspot: dict[str, str]
) -> None:
    try:
        form = Form(title=title, note=note, hotspot=hotspot)
    except ValidationError:
        return
    assert form.title is not None
    assert storable_in_postgresql(form.title)
    assert form.note is not None
    assert storable_in_postgresql(form.note)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(alphabet=ANY_CHARACTER, max_size=8)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet=ANY_CHARACTER, max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(JSON)
def test_a_document_that_passes_encodes_as_jsonb_takes_it(document: Any) -> None:
    if document_problem(document) is not None:
        return
    encoded = json.dumps(document, allow_nan=False, ensure_ascii=False)  # raises on NaN/inf
    assert storable_in_postgresql(encoded)
    assert "\\u0000" not in encoded


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"a": "x\x00"}, "a contains a NUL"),
        ({"a\x00": 1}, "key"),
        ({"a": [1, {"b": math.inf}]}, "a[1].b is inf"),
        ({"a": math.nan}, "nan"),
        ({"a": 2**64}, "64-bit"),
        ({"a": {1, 2}}, "not a JSON value"),
    ],
)
def test_unstorable_documents_say_where(document: dict[str, Any], words: str) -> None:
    problem = document_problem(document)
    assert problem is not None
    assert words in problem
    with pytest.raises(ValueError, match=r"\w"):
        check_document(document)


def test_depth_and_size_are_bounded() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert document_problem(deep) is not None
    assert document_problem(deep[0]) is None
    assert document_problem({"cells": ["8a31aa5a9a47fff"] * 50_000}) is not None
