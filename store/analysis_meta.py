"""The analysis settings a database's derived data was computed with: its `meta` rows.

`h3_resolution` is the H3 resolution of `reading.cell`, the rollups and the passes; `migrate`
writes it with the first migration, from the ingest's configured resolution. It is the one
source of the resolution afterwards: the ingest, the API and the hotspot analysis read it here
(the analysis settings have none), whatever a later configuration says. `pass_gap_s` is the
longest gap inside a stored pass; migration 0003 writes it (120 s). Only `envpatrol rebuild`
changes them, recomputing everything derived in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from edge.errors import EnvpatrolError

__all__ = ["Analysis", "MissingMetaError", "read_analysis"]

_KEYS = ("h3_resolution", "pass_gap_s")


class MissingMetaError(EnvpatrolError, RuntimeError):
    """The database has no `key` row in `meta`: it was never migrated."""

    def __init__(self, key: str) -> None:
        super().__init__(f"meta {key}", "missing; was the database migrated (envpatrol migrate)?")
        self.key = key


@dataclass(frozen=True, slots=True)
class Analysis:
    """How readings are analysed: the H3 resolution of cells and the longest gap inside a pass."""

    resolution: int
    pass_gap: timedelta


def read_analysis(conn: psycopg.Connection[Any], *, lock: bool = False) -> Analysis:
    """The analysis settings in force.

    Both rows exist in every migrated database, so a missing one raises `MissingMetaError`
    rather than falling back to a default: a guessed resolution would read and write cells at
    another resolution than the stored ones, silently. With `lock`, the rows stay share-locked
    until the transaction ends, so a rebuild (which updates them) waits for the batch, and a
    batch that starts during a rebuild waits for it and then uses the new settings.
    """
    query = "SELECT key, value FROM meta WHERE key IN ('h3_resolution', 'pass_gap_s')"
    with conn.cursor(row_factory=tuple_row) as cur:
        rows: dict[str, str] = dict(cur.execute(query + (" FOR SHARE" if lock else "")).fetchall())
    for key in _KEYS:
        if key not in rows:
            raise MissingMetaError(key)
    return Analysis(
        resolution=int(rows["h3_resolution"]),
        pass_gap=timedelta(seconds=float(rows["pass_gap_s"])),
    )
