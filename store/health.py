"""Whether the database answers, and roughly how much it holds."""

from __future__ import annotations

from dataclasses import dataclass

from store.conditions import Conn

__all__ = ["Health", "database_health"]


@dataclass(frozen=True, slots=True)
class Health:
    """The database answered. Counts are the planner's estimates (as of the last ANALYZE, which
    autovacuum keeps current): exact counts would scan the whole table on every probe. Rows in
    compressed TimescaleDB chunks are not in the estimate."""

    readings: int
    dead_letters: int


# Rows of a table and of all its partitions or TimescaleDB chunks, from pg_class statistics.
_ESTIMATE = """
WITH RECURSIVE tree(oid) AS (
    SELECT %(table)s::regclass::oid
    UNION ALL
    SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
)
SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
FROM pg_class c JOIN tree t ON c.oid = t.oid
WHERE c.relkind = 'r'
"""


def database_health(conn: Conn) -> Health:
    """Raises psycopg.Error when the database cannot answer."""
    counts = {}
    for table in ("reading", "dead_letter"):
        row = conn.execute(_ESTIMATE, {"table": table}).fetchone()
        counts[table] = 0 if row is None else int(row[0])
    return Health(readings=counts["reading"], dead_letters=counts["dead_letter"])
