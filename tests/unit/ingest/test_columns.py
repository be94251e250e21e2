"""The binary forms a row carries for `flags` (text[]) and `channel_flags` (jsonb) are what
psycopg's own binary dumpers make of the same values (no server: adaptation only)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from psycopg import adapt, postgres
from psycopg.pq import Format

from ingest.columns import (
    COPY_TYPES,
    NO_CHANNEL_FLAGS,
    NO_FLAGS,
    channel_flags_field,
    flags_field,
)
from store.reading_columns import COLUMNS

TEXT_ARRAY, JSONB = postgres.types["text"].array_oid, postgres.types["jsonb"].oid
names = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)


def psycopg_dumps(oid: int, value: object) -> bytes:
    transformer = adapt.Transformer()
    transformer.set_dumper_types([oid], Format.BINARY)
    dumped = transformer.dump_sequence([value], [adapt.PyFormat.BINARY])[0]
    assert dumped is not None
    return bytes(dumped)


@given(st.lists(names, max_size=6))
def test_flags_are_a_binary_text_array(flags: list[str]) -> None:
    assert flags_field(flags) == psycopg_dumps(TEXT_ARRAY, flags)
    assert flags_field(tuple(flags)) == flags_field(flags)


@given(st.dictionaries(names, st.lists(names, max_size=3), max_size=4))
def test_channel_flags_are_a_binary_jsonb(channel_flags: dict[str, list[str]]) -> None:
    ours, theirs = channel_flags_field(channel_flags), psycopg_dumps(JSONB, channel_flags)
    assert ours[:1] == theirs[:1] == b"\x01"
    assert json.loads(ours[1:]) == json.loads(theirs[1:]) == channel_flags


def test_none_is_the_empty_constant_and_copied_as_bytes() -> None:
    assert flags_field([]) is NO_FLAGS
    assert channel_flags_field({}) is NO_CHANNEL_FLAGS
    at = COLUMNS.index("flags")
    assert COPY_TYPES[at : at + 2] == ("bytea", "bytea")
    assert sum(kind == "bytea" for kind in COPY_TYPES) == 2
