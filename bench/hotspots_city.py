"""The hotspot job area by area on a city's fleet: full runs at 1 and 2 workers, then an
incremental run after an hour of new passes.

The city is `--districts` copies of the sub-district of bench/hotspots_scale.py (8 x 8 streets,
~3 km2, five sources, the same two-shift trips), 4 km apart, each with `--vehicles` vehicles
(default 5 x 10 = 50 vehicles). Passes are generated with hotspots.analysis.synthetic and written
straight into `pass` of a scratch database by binary COPY, the rows built with numpy (one reading
per pass: count 1, mean = min = max), which is much faster than the ingest's pass store. All but
the newest `--new-minutes` of passes are stored; the job (`run_once`, by area) runs over them at
each worker count, then the newest passes are stored and an incremental run follows on the runner
of the last full run; a full run with a new runner over the same window checks it gives the same
hotspots. `--new-districts` limits the new passes to the first N districts (the rest parked).

    .venv/bin/python -m bench.hotspots_city [--districts 5] [--vehicles 10] [--days 30]
        [--workers 1,2] [--area-resolution 7] [--new-districts N] [--settle-min 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from bench.hotspots_scale import synthetic_world
from demo.embedded import EmbeddedDatabase
from edge.units import CHANNELS
from hotspots.analysis.passes import PassTable
from hotspots.analysis.synthetic import SHUANGJING, Source, generate, offset
from hotspots.area_runs import AreaRunner, AreaSettings
from hotspots.job import JobSettings, run_once
from store.pass_columns import stat_columns
from store.scratch import admin_database_url, scratch_database

RESOLUTION = 11  # the sub-district benchmark's
PG_EPOCH_S = 946_684_800.0
DISTRICT_SPACING_M = 4000.0


def district_origin(k: int) -> tuple[float, float]:
    """Districts on a square layout, 4 km apart."""
    side = 3
    return offset(SHUANGJING, DISTRICT_SPACING_M * (k % side), DISTRICT_SPACING_M * (k // side))


def district(k: int, days: int, vehicles: int) -> PassTable:
    world = synthetic_world(days, vehicles)
    east, north = (
        DISTRICT_SPACING_M * (k % 3),
        DISTRICT_SPACING_M * (k // 3),
    )
    moved = tuple(
        Source(*offset((s.lat, s.lon), east, north), s.pollutant, s.amplitude, s.decay_m,
               s.schedule)
        for s in world.sources
    )  # fmt: skip
    return generate(
        dataclasses.replace(world, origin=district_origin(k), sources=moved, seed=world.seed + k)
    )


def copy_layout(channels: list[str]) -> tuple[np.dtype[Any], list[str]]:
    """A row of binary COPY into `pass`: field count, then each field's length and value."""
    fields: list[tuple[str, str]] = [("fields", ">i2")]
    names: list[str] = []

    def add(name: str, kind: str) -> None:
        fields.extend([(f"{name}_len", ">i4"), (name, kind)])
        names.append(name)

    for name, kind in (
        ("resolution", ">i2"), ("vehicle", "S6"), ("start_time", ">i8"), ("first_seq", ">i8"),
        ("end_time", ">i8"), ("last_seq", ">i8"), ("cell", ">i8"), ("readings", ">i4"),
    ):  # fmt: skip
        add(name, kind)
    for channel in channels:
        stat = stat_columns(channel)
        add(stat.n, ">i4")
        for column in (stat.mean, stat.min, stat.max):
            add(column, ">f8")
        if stat.energy:
            add(stat.energy, ">f8")
    return np.dtype(fields), names


def copy_rows(table: PassTable, district_no: int, mask: np.ndarray) -> tuple[bytes, list[str]]:  # type: ignore[type-arg]
    """The passes of `mask` as binary COPY rows of `pass` (no header or trailer)."""
    channels = [c for c in table.values if c in CHANNELS]
    layout, names = copy_layout(channels)
    n = int(mask.sum())
    rows = np.zeros(n, dtype=layout)
    rows["fields"] = len(names)
    for name in names:
        rows[f"{name}_len"] = layout.fields[name][0].itemsize  # type: ignore[index]
    names_of = np.array(
        [f"d{district_no}v{i:03d}"[:6].ljust(6).encode() for i in range(len(table.vehicles))]
    )
    vehicle = table.vehicle[mask]
    start_us = np.round((table.start[mask] - PG_EPOCH_S) * 1e6).astype(np.int64)
    rows["resolution"] = RESOLUTION
    rows["vehicle"] = names_of[vehicle]
    rows["start_time"] = start_us
    rows["end_time"] = np.round((table.end[mask] - PG_EPOCH_S) * 1e6).astype(np.int64)
    seq = np.flatnonzero(mask).astype(np.int64)
    rows["first_seq"] = seq
    rows["last_seq"] = seq
    rows["cell"] = table.cell[mask]
    rows["readings"] = 1
    for channel in channels:
        stat = stat_columns(channel)
        value = table.values[channel][mask]
        rows[stat.n] = 1
        for column in (stat.mean, stat.min, stat.max):
            rows[column] = value
        if stat.energy:
            rows[stat.energy] = value
    return rows.tobytes(), names


def store(conn: psycopg.Connection[Any], tables: list[PassTable], masks: list[Any]) -> int:
    """Write the masked passes of every district into `pass`; how many."""
    total = 0
    for k, (table, mask) in enumerate(zip(tables, masks, strict=True)):
        if not mask.any():
            continue
        body, names = copy_rows(table, k, mask)
        columns = ", ".join(names)
        with (
            conn.cursor() as cur,
            cur.copy(
                f"COPY pass ({columns}) FROM STDIN (FORMAT BINARY)"  # type: ignore[arg-type]
            ) as copy,
        ):
            copy.write(b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8)
            step = 64 * 1024 * 1024
            for at in range(0, len(body), step):
                copy.write(body[at : at + step])
            copy.write(b"\xff\xff")
        total += int(mask.sum())
    return total


def cpu_s() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its reaped children so far (the pool's
    workers are the forkserver's children: their time is the runs' `cpu_s`). On a shared machine
    wall time says little, CPU time what the work costs."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, workers.ru_utime + workers.ru_stime


def spent(since: tuple[float, float]) -> str:
    return f"CPU of the job process {cpu_s()[0] - since[0]:.1f} s"


def measure(
    conn: psycopg.Connection[Any],
    args: argparse.Namespace,
    tables: list[PassTable],
    new: list[Any],
    window: timedelta,
    now: datetime,
    later: datetime,
) -> None:
    """Full runs at each worker count, the new passes, an incremental run, a full run again."""
    cpu = cpu_s()
    whole = run_once(conn, JobSettings(window=window, areas=AreaSettings(enabled=False)), now=now)
    print(
        f"whole window:    {whole.seconds:.1f} s (one detect, no areas; {whole.hotspots} "
        f"hotspots; {spent(cpu)})"
    )
    job = JobSettings(window=window)
    runner = None
    for workers in (int(w) for w in args.workers.split(",")):
        job = JobSettings(
            window=window,
            areas=AreaSettings(
                enabled=True,
                resolution=args.area_resolution,
                workers=workers,
                settle=timedelta(minutes=args.settle_min),
            ),
        )
        if runner is not None:
            runner.close()
        cpu = cpu_s()
        runner = AreaRunner(job.areas)
        summary = run_once(conn, job, now=now, runner=runner)
        if workers > 1:
            runner.close()  # reaps the workers, so their CPU time is counted
        print(
            f"full, {workers} worker(s): {summary.seconds:.1f} s ({summary.passes:,} passes, "
            f"{summary.areas} areas, {summary.hotspots} hotspots; {spent(cpu)}, areas "
            f"{summary.cpu_s:.1f} s; largest area process {summary.peak_mb:.0f} MB)"
        )
    assert runner is not None
    t0 = time.perf_counter()
    with conn.transaction():
        store(conn, tables, new)
    stored_new = time.perf_counter() - t0
    cpu = cpu_s()
    again = run_once(conn, job, now=later, runner=runner)
    runner.close()
    print(
        f"incremental:     {again.seconds:.2f} s ({again.analysed} of {again.areas} areas "
        f"re-analysed; {spent(cpu)}, areas {again.cpu_s:.1f} s; storing the new passes {stored_new:.1f} s, not part of it)"
    )
    with AreaRunner(job.areas) as fresh:
        full = run_once(conn, job, now=later, runner=fresh)
    same = conn.execute(
        "SELECT (SELECT array_agg((pollutant, stratum, peak_cell, label, excess, passes) "
        "ORDER BY rank) FROM hotspot WHERE run_id = %s) IS NOT DISTINCT FROM "
        "(SELECT array_agg((pollutant, stratum, peak_cell, label, excess, passes) "
        "ORDER BY rank) FROM hotspot WHERE run_id = %s)",
        (again.run_id, full.run_id),
    ).fetchone()
    print(
        f"full after:      {full.seconds:.1f} s; same hotspots as the incremental run: "
        f"{bool(same and same[0])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--districts", type=int, default=5)
    parser.add_argument("--vehicles", type=int, default=10, help="per district")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--area-resolution", type=int, default=7)
    parser.add_argument("--new-minutes", type=float, default=60.0)
    parser.add_argument("--new-districts", type=int, help="districts driving in the new hour")
    parser.add_argument("--settle-min", type=float, default=10.0, help="[hotspots] settle_min")
    args = parser.parse_args()

    started = time.perf_counter()
    tables = [district(k, args.days, args.vehicles) for k in range(args.districts)]
    generated = time.perf_counter() - started
    last = max(float(t.start.max()) for t in tables)
    cut = last - args.new_minutes * 60.0
    newer = args.districts if args.new_districts is None else args.new_districts
    old = [t.start < cut for t in tables]
    new = [(t.start >= cut) & (k < newer) for k, t in enumerate(tables)]
    passes = sum(int(m.sum()) for m in old)
    cells = len(set().union(*(set(np.unique(t.cell).tolist()) for t in tables)))
    admin_url = admin_database_url(start=lambda: EmbeddedDatabase.start().url)
    window = timedelta(days=args.days + 1)
    now = datetime.fromtimestamp(cut, UTC)
    later = now + timedelta(minutes=args.new_minutes)
    print(
        f"city:            {args.districts} districts x {args.vehicles} vehicles x {args.days} days"
    )
    print(f"passes:          {passes:,} stored first, {sum(int(m.sum()) for m in new):,} new")
    print(f"cells:           {cells:,} (H3 resolution {RESOLUTION}), 6 pollutants")
    print(f"generate:        {generated:.1f} s")
    with (
        scratch_database(admin_url, h3_resolution=RESOLUTION) as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        t0 = time.perf_counter()
        with conn.transaction():
            store(conn, tables, old)
        conn.execute("ANALYZE pass")
        print(f"store (COPY):    {time.perf_counter() - t0:.1f} s (not part of the job)")
        measure(conn, args, tables, new, window, now, later)
    own_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS:        job {own_mb:.0f} MB (the workers': on the full runs' lines)")
    print(f"load average:    {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
