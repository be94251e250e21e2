"""The ingest's database work per batch, in process: how batch size sets the cost per reading.

    .venv/bin/python -m bench.ingest_batches [--vehicles 1000] [--per-vehicle 40]
                                             [--batches 1000,2500,5000,10000]

A fleet's one-reading messages (vehicles interleaved, as a backlog drains) are decoded
(`ingest.decode`) and written with the ingest's statements in batches of each size, into a
fresh migrated database per size, timing each phase per reading: decoding, the COPY into the
staging table, the insert statement (readings, rollups, positions, touched stretches), the pass
statement and the COMMIT. No MQTT: the database's share of (a) in `bench.ingest`.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import psycopg

from bench.ingest import database, fleet, messages
from edge.topics import Topics
from ingest import pass_store
from ingest.decode import Row, decode_rows
from ingest.passes import STATS_EXCLUDED_FLAGS
from ingest.validate import Rejection
from ingest.writer import _INSERT, Rows, Writer, copy_rows, read_analysis

PHASES = ("decode", "copy", "insert", "passes", "commit")


def run(payloads: list[tuple[str, bytes]], batch: int) -> tuple[int, float, dict[str, float]]:
    """(readings, seconds, seconds per phase) for writing `payloads` in batches of `batch`."""
    topics = Topics()
    spent = dict.fromkeys(PHASES, 0.0)
    n = 0
    with database() as url, psycopg.connect(url, autocommit=False) as conn:
        writer = Writer(conn, 10, plain=True)
        writer.prepare()
        started = time.perf_counter()
        for first in range(0, len(payloads), batch):
            t0 = time.perf_counter()
            rows: list[Row] = []
            for topic, payload in payloads[first : first + batch]:
                decoded = decode_rows(topics, topic, payload, 10)
                assert not isinstance(decoded, Rejection), decoded
                rows.extend(decoded)
            t1 = time.perf_counter()
            writer.ensure_partitions(Rows(10, rows).days())
            with conn.cursor() as cur:
                analysis = read_analysis(conn, lock=True)
                copy_rows(cur, "reading_stage", rows)
                t2 = time.perf_counter()
                cur.execute(
                    _INSERT,  # type: ignore[arg-type]
                    {"resolution": 10, "stats_excluded": list(STATS_EXCLUDED_FLAGS)},
                ).fetchone()
                t3 = time.perf_counter()
                pass_store.refresh_touched(cur, 10, analysis.pass_gap)
                t4 = time.perf_counter()
            conn.commit()
            t5 = time.perf_counter()
            times = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
            for phase, seconds in zip(PHASES, times, strict=True):
                spent[phase] += seconds
            n += len(rows)
        return n, time.perf_counter() - started, spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--per-vehicle", type=int, default=40)
    parser.add_argument("--batches", default="1000,2500,5000,10000")
    args = parser.parse_args()
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    payloads = messages(fleet(args.vehicles, args.per_vehicle, start), 1)
    print(f"{len(payloads)} one-reading messages from {args.vehicles} vehicles")
    print("| batch (messages) | readings/s | " + " | ".join(f"{p} us" for p in PHASES) + " |")
    print("|---:|---:|" + "---:|" * len(PHASES))
    for batch in (int(b) for b in args.batches.split(",")):
        n, seconds, spent = run(payloads, batch)
        cells = " | ".join(f"{spent[p] * 1e6 / n:.1f}" for p in PHASES)
        print(f"| {batch:,} | {n / seconds:,.0f} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
