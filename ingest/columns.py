"""The `reading` table's columns as the writer copies them: their PostgreSQL types and the
binary encoders of the two that are not plain scalars. Their names are `store.reading_columns`."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

import orjson

from store.reading_columns import CHANNEL_COLUMNS, COLUMNS

# PostgreSQL types of COLUMNS (0001_core.sql).
BASE_TYPES = (
    "text",
    "int8",
    "timestamptz",
    "text",
    "float8",
    "float8",
    "bool",
    "int2",
    "int2",
    "float4",
    "float4",
    "float4",
    "float4",
    "int8",
    "text",
    "text[]",
    "jsonb",
)
COLUMN_TYPES = BASE_TYPES + ("float8",) * len(CHANNEL_COLUMNS)

# A row carries `flags` (text[]) and `channel_flags` (jsonb) already in PostgreSQL's binary form,
# made where the row is made: psycopg's dumpers for lists and dicts run in Python for every row
# and were most of the client CPU a row took to encode for COPY. Binary COPY has no types of
# its own: each field is the bytes the column type's receive function reads, so these two go
# through psycopg's bytes dumper, as they are.
COPY_TYPES = tuple(
    "bytea" if name in ("flags", "channel_flags") else kind
    for name, kind in zip(COLUMNS, COLUMN_TYPES, strict=True)
)
_TEXT_OID = 25
NO_FLAGS = struct.pack("!iiI", 0, 0, _TEXT_OID)  # no dimensions, no NULLs, of text
NO_CHANNEL_FLAGS = b"\x01{}"  # jsonb's format version, then the JSON text


def flags_field(flags: Sequence[str]) -> bytes:
    """`flags` as a binary text[]: dimensions, NULL flag, element type, then (one dimension)
    its length and lower bound, and each element's length and UTF-8 bytes."""
    if not flags:
        return NO_FLAGS
    items = [flag.encode() for flag in flags]
    head = struct.pack("!iiIii", 1, 0, _TEXT_OID, len(items), 1)
    return head + b"".join(struct.pack("!i", len(item)) + item for item in items)


def channel_flags_field(channel_flags: Mapping[str, Sequence[str]]) -> bytes:
    """`channel_flags` as a binary jsonb."""
    return b"\x01" + orjson.dumps(channel_flags) if channel_flags else NO_CHANNEL_FLAGS
