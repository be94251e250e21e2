"""Storage per vehicle-year on plain PostgreSQL: what each table takes per stored reading.

Fills a fresh database with the API benchmark's fleet model (`bench.api_scale_data`: a reading
every 10 s around the clock, patrol shifts, the simulated sources), by binary COPY into the daily
partitions, then the rollups and passes by the store's own SQL, `VACUUM ANALYZE` and one hotspot
run: the tables as the ingest and the job leave them. Then sums `pg_total_relation_size` (heap,
TOAST and indexes) per table, partitions under their parent, and scales the figures to one
vehicle-year (365 days of the model's readings per day).

    .venv/bin/python -m bench.storage --vehicles 5 --days 14

The database is dropped at the end unless `--keep`. TimescaleDB's compression cannot be measured
here (no TimescaleDB on this machine); docs/scaling.md says what is and is not measured.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from bench.api_scale_data import FleetSpec
from bench.api_scale_fill import database_url, fill

ADMIN_URL = os.environ.get(
    "ENVPATROL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

SIZES = """
SELECT coalesce(pg_partition_root(c.oid), c.oid)::regclass::text AS family,
       sum(pg_total_relation_size(c.oid))::bigint AS bytes
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%'
GROUP BY 1
ORDER BY 2 DESC
"""


def measure(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        return {str(family): int(size) for family, size in conn.execute(SIZES).fetchall()}


def report(spec: FleetSpec, sizes: dict[str, int]) -> dict[str, Any]:
    readings = spec.readings
    per_vehicle_year = spec.ticks_per_day * 365
    total = sum(sizes.values())
    top = dict(list(sizes.items())[:8])
    rest = total - sum(top.values())
    return {
        "vehicles": spec.vehicles,
        "days": spec.days,
        "readings": readings,
        "readings_per_vehicle_year": per_vehicle_year,
        "bytes_per_reading": {
            **{k: round(v / readings, 1) for k, v in top.items()},
            "other tables": round(rest / readings, 1),
            "total": round(total / readings, 1),
        },
        "gb_per_vehicle_year": round(total / readings * per_vehicle_year / 1e9, 2),
        "gb_per_vehicle_year_readings_only": round(
            sizes.get("reading", 0) / readings * per_vehicle_year / 1e9, 2
        ),
        "database_bytes": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=5)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--database", default="envpatrol_bench_storage")
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    spec = FleetSpec(today - timedelta(days=args.days), vehicles=args.vehicles, days=args.days)
    fill(args.admin_url, args.database, spec, log=lambda _line: None)
    url = database_url(args.admin_url, args.database)
    try:
        print(json.dumps(report(spec, measure(url)), indent=2))
    finally:
        if not args.keep:
            with psycopg.connect(args.admin_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(args.database)
                    )
                )


if __name__ == "__main__":
    main()
