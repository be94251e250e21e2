"""The ingest's database work per batch, in process: what batch size and the statements cost
per reading.

    .venv/bin/python -m bench.ingest_batches [--vehicles 1000] [--per-vehicle 40]
        [--per-message 1] [--batches 1000,2500,5000,10000] [--statements usual,redelivery]
        [--repeats 1]

A fleet's messages (vehicles interleaved, as a backlog drains) are decoded (`ingest.decode`) and
written with the ingest's statements in batches of each size, into a fresh migrated database per
run, timing each phase per reading: decoding, the COPY into the staging table, the insert
statement (readings, rollups, positions, touched stretches), the pass statement and the COMMIT;
and the CPU time of the database backend and of this process. No MQTT: the database's share of
`bench.ingest`.

`--statements` picks what each batch is written with: `usual` is what the ingest runs for a
batch of new readings (the insert without ON CONFLICT, in a savepoint; in-order passes from the
staging table); `redelivery` is what it runs for a batch that holds readings already stored
(the insert with ON CONFLICT DO NOTHING; in-order passes from `reading`). With both, the runs
alternate, `--repeats` times each.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import psycopg

from bench.ingest import cpu_seconds, database, fleet, messages
from edge.quality import STATS_EXCLUDED_FLAGS
from edge.topics import Topics
from ingest import pass_store
from ingest.decode import Row, decode_rows
from ingest.validate import Rejection
from ingest.writer import _INSERT, Rows, Writer, copy_rows
from store.analysis_meta import read_analysis

PHASES = ("decode", "copy", "insert", "passes", "commit")
STATEMENTS = ("usual", "redelivery")


def decoded(topics: Topics, payloads: list[tuple[str, bytes]]) -> list[Row]:
    """The `reading` rows of `payloads`, every one valid."""
    rows: list[Row] = []
    for topic, payload in payloads:
        got = decode_rows(topics, topic, payload, 10)
        assert not isinstance(got, Rejection), got
        rows.extend(got.readings)
    return rows


def run(
    payloads: list[tuple[str, bytes]], batch: int, statements: str
) -> tuple[int, float, dict[str, float]]:
    """(readings, seconds, seconds per phase and CPU seconds of the database and this process)
    for writing `payloads` in batches of `batch` with `statements`."""
    topics = Topics()
    spent = dict.fromkeys((*PHASES, "db_cpu", "py_cpu"), 0.0)
    n = 0
    with database() as url, psycopg.connect(url, autocommit=False) as conn:
        writer = Writer(conn, 10, plain=True)
        writer.prepare()
        backend = conn.info.backend_pid
        db_cpu, py_cpu = cpu_seconds(backend), time.process_time()
        started = time.perf_counter()
        for first in range(0, len(payloads), batch):
            t0 = time.perf_counter()
            rows = decoded(topics, payloads[first : first + batch])
            t1 = time.perf_counter()
            writer.ensure_partitions(Rows(10, rows).days())
            with conn.cursor() as cur:
                analysis = read_analysis(conn, lock=True)
                copy_rows(cur, "reading_stage", rows)
                t2 = time.perf_counter()
                if statements == "usual":
                    counts = writer.insert_staged(cur, len(rows))
                else:
                    counts = cur.execute(
                        _INSERT,
                        {"resolution": 10, "stats_excluded": list(STATS_EXCLUDED_FLAGS)},
                    ).fetchone()
                assert counts is not None
                t3 = time.perf_counter()
                pass_store.refresh_touched(
                    cur,
                    10,
                    analysis.pass_gap,
                    all_staged_new=statements == "usual" and int(counts[0]) == len(rows),
                )
                t4 = time.perf_counter()
            conn.commit()
            t5 = time.perf_counter()
            times = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
            for phase, seconds in zip(PHASES, times, strict=True):
                spent[phase] += seconds
            n += len(rows)
        spent["db_cpu"] = cpu_seconds(backend) - db_cpu
        spent["py_cpu"] = time.process_time() - py_cpu
        return n, time.perf_counter() - started, spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--per-vehicle", type=int, default=40)
    parser.add_argument("--per-message", type=int, default=1)
    parser.add_argument("--batches", default="1000,2500,5000,10000")
    parser.add_argument("--statements", default="usual")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    chosen = args.statements.split(",")
    if not set(chosen) <= set(STATEMENTS):
        parser.error(f"--statements: some of {', '.join(STATEMENTS)}")
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    payloads = messages(fleet(args.vehicles, args.per_vehicle, start), args.per_message)
    print(
        f"{len(payloads)} messages of {args.per_message} reading(s) from {args.vehicles} vehicles;"
        " microseconds per reading"
    )
    columns = (*PHASES, "db CPU", "process CPU")
    print("| statements | batch (messages) | readings/s | " + " | ".join(columns) + " |")
    print("|---|---:|---:|" + "---:|" * len(columns))
    for batch in (int(b) for b in args.batches.split(",")):
        for _ in range(args.repeats):
            for statements in chosen:
                n, seconds, spent = run(payloads, batch, statements)
                cells = " | ".join(
                    f"{spent[p] * 1e6 / n:.1f}" for p in (*PHASES, "db_cpu", "py_cpu")
                )
                print(f"| {statements} | {batch:,} | {n / seconds:,.0f} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
