"""One generated world end to end through the real pipeline, scored beside the harness.

    .venv/bin/python -m bench.world_pipeline --family spurs --seed 4 --days 14 [--speed 400]

The world (`firmware_sim.worlds.generate_world`) runs on the real parts: the scenario's boxes
and GPS receivers on pseudo-terminals (`firmware_sim.patrol.ScenarioRun`), one edge agent per
vehicle with the edge configuration `envpatrol sim --edge-configs` writes for it, a private
Mosquitto (the world's vehicle names are client ids: on a shared broker two runs would throw
each other off), the ingest into a scratch PostgreSQL database, the hotspot job
(`hotspots.job.run_once`) and the HTTP API (`envpatrol api`, `/v1/hotspots`). The API's
hotspots are scored against the world's sources as the harness scores its own
(`bench.world_scoring`: merged per pollutant, matched to the sources' shapes), and the harness's
numpy path (`bench.world_readings`) runs on the same world, cut at the same moment, with the
same analysis settings.

The scenario runner's clock walks every simulated second at the speed-up, nights included, and
a generated world's fleet is powered only an hour or a few a day. So the run fast-forwards the
hours when no vehicle is powered (`FastForward`): the simulator's clock and the agents' clock
(drive seconds) cross such a gap in a few wall seconds, still long enough for the agents to
poll the silent boxes and so see them switched off. `--walk-nights` walks them instead.
"""

from __future__ import annotations

import argparse
import bisect
import json
import logging
import math
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

from bench.world_readings import pass_table, vehicle_passes, world_readings
from bench.world_scoring import (
    daily_passes,
    local_day,
    merged,
    method_detections,
    nearest_cells,
    score,
    true_sources,
)
from demo.api_server import api_server
from demo.embedded import EmbeddedBroker, EmbeddedDatabase
from demo.job import SHORT_PATROL
from edge.agent import Agent
from edge.box import Discard
from edge.config import load_edge_settings
from edge.mqtt import MqttSettings
from firmware_sim.box import Served
from firmware_sim.cli import write_edge_config
from firmware_sim.drive import SimClock
from firmware_sim.field import Source
from firmware_sim.patrol import ScenarioRun
from firmware_sim.scenario import Scenario
from firmware_sim.truth import Accounting, account
from firmware_sim.worlds import FAMILIES, generate_world
from hotspots.analysis.labels import RANK, Label
from hotspots.analysis.passes import PassTable
from hotspots.analysis.settings import AnalysisSettings
from hotspots.job import JobSettings, RunSummary, run_once
from hotspots.pass_reader import read_passes
from hotspots.scoring import Detection, TrueSource, first_day_reaching
from ingest.service import IngestService
from ingest.settings import IngestSettings
from store.scratch import admin_database_url, scratch_database

__all__ = [
    "SETTINGS",
    "Comparison",
    "DriveClock",
    "FastForward",
    "PipelineRun",
    "Scored",
    "api_detections",
    "compare",
    "figures",
    "harness_table",
    "report",
    "run_pipeline",
    "score_detections",
    "wait_until",
]

SETTINGS: dict[str, AnalysisSettings] = {"default": AnalysisSettings(), "short": SHORT_PATROL}
# Simulated seconds walked at the speed-up on either side of a powered period before a gap is
# fast-forwarded: the agents' last polls and the boxes' power-off happen at the usual pace.
PAD_S = 120.0
# Wall seconds a fast-forwarded gap lasts: a few timed-out polls per agent (each attempt waits
# its timeout in wall seconds), after which the silence, in drive seconds, is the whole gap.
GAP_WALL_S = 2.5


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, every: float = 0.1
) -> None:
    """Poll `condition` until it holds; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


# ---------------------------------------------------------------------------- the clock


class FastForward:
    """Simulated time as a piecewise-linear function of wall time: `speed` times the wall clock
    while any vehicle is powered (padded by `pad_s`), a gap without any crossed in `gap_wall_s`.
    `walk` crosses every gap at the speed-up, as the scenario runner does."""

    def __init__(
        self,
        scenario: Scenario,
        speed: float,
        *,
        walk: bool = False,
        pad_s: float = PAD_S,
        gap_wall_s: float = GAP_WALL_S,
    ) -> None:
        self.speed = speed
        start = scenario.start
        powered = sorted(
            (
                max(0.0, (w.on - start).total_seconds() - pad_s),
                (w.off - start).total_seconds() + pad_s,
            )
            for v in scenario.vehicles
            for w in scenario.windows(v)
        )
        union: list[list[float]] = []
        for on, off in powered:
            if union and on <= union[-1][1]:
                union[-1][1] = max(union[-1][1], off)
            else:
                union.append([on, off])
        duration = scenario.duration_h * 3600.0
        # The run ends once the last powered period (and its pad) is over.
        self.end_s = min(duration, union[-1][1]) if union else duration
        sim, wall = [0.0], [0.0]
        for on, off in [*union, [self.end_s, self.end_s]]:
            gap = min(on, self.end_s) - sim[-1]
            if gap > 0:
                sim.append(sim[-1] + gap)
                wall.append(wall[-1] + (gap / speed if walk else min(gap / speed, gap_wall_s)))
            stretch = min(off, self.end_s) - sim[-1]
            if stretch > 0:
                sim.append(sim[-1] + stretch)
                wall.append(wall[-1] + stretch / speed)
        self._sim, self._wall = sim, wall
        self.wall_s = wall[-1]
        self._origin = time.monotonic()

    def elapsed(self) -> float:
        """Simulated seconds since the scenario's start."""
        w = time.monotonic() - self._origin
        i = bisect.bisect_right(self._wall, w) - 1
        if i >= len(self._wall) - 1:
            return self._sim[-1] + (w - self._wall[-1]) * self.speed
        span = self._wall[i + 1] - self._wall[i]
        f = 0.0 if span == 0 else (w - self._wall[i]) / span
        return self._sim[i] + f * (self._sim[i + 1] - self._sim[i])

    def monotonic(self) -> float:
        """A monotonic clock for `SimClock(speed=speed)`: its differences times the speed are
        simulated seconds."""
        return self.elapsed() / self.speed

    def sim_clock(self, start: datetime) -> SimClock:
        return SimClock(start, speed=self.speed, monotonic=self.monotonic)


@dataclass(frozen=True, slots=True)
class DriveClock:
    """The agents' clock (edge.clock.Clock) on the fast-forwarded timeline: drive seconds are
    simulated seconds, so fix ages, warm-up and the box's silences are what the road had."""

    timeline: FastForward

    def monotonic(self) -> float:
        return self.timeline.elapsed()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def boottime(self) -> float | None:
        return None


# ---------------------------------------------------------------------------- the pipeline


@dataclass(slots=True)
class VehicleRecord:
    """What one vehicle's box served and what its agent made of it."""

    name: str
    served: list[Served] = field(default_factory=list)
    discards: list[Discard] = field(default_factory=list)
    readings: int = 0  # the agent's readings (seq 1 ..)
    accepted: int = 0  # the box client's successful polls
    requests: int = 0
    stored: int = 0  # rows in `reading`
    stored_seqs_ok: bool = False  # exactly seq 1 .. readings, once each
    accounting: Accounting | None = None


@dataclass(slots=True)
class PipelineRun:
    """The pipeline's side of one world."""

    vehicles: dict[str, VehicleRecord]
    inserted: int  # the ingest's count
    dead_letters: int
    job: RunSummary | None
    table: PassTable | None  # the stored passes the job read
    hotspots: list[dict[str, Any]]  # /v1/hotspots?format=json results
    wall_s: dict[str, float]

    @property
    def produced(self) -> int:
        return sum(v.readings for v in self.vehicles.values())

    @property
    def stored(self) -> int:
        return sum(v.stored for v in self.vehicles.values())


def api_hotspots(base: str) -> list[dict[str, Any]]:
    """Every hotspot of the newest run, as the API lists them."""
    out: list[dict[str, Any]] = []
    with httpx.Client(base_url=base, timeout=30) as http:
        while True:
            page = http.get(
                "/v1/hotspots", params={"format": "json", "limit": 1000, "offset": len(out)}
            )
            if page.status_code != 200:
                raise AssertionError(f"/v1/hotspots: {page.status_code} {page.text}")
            results = page.json()["results"]
            out.extend(results)
            if len(results) < 1000:
                return out


def _stored_counts(database_url: str) -> dict[str, tuple[int, int, int, int]]:
    """Per vehicle: rows, distinct seqs, lowest and highest seq in `reading`."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT vehicle, count(*), count(DISTINCT seq), min(seq), max(seq) "
            "FROM reading GROUP BY vehicle"
        ).fetchall()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}


def run_pipeline(
    scenario: Scenario,
    *,
    speed: float,
    settings: AnalysisSettings,
    cut: datetime,
    resolution: int = 10,
    walk_nights: bool = False,
    broker_url: str | None = None,
    admin_url: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> PipelineRun:
    """Run `scenario` through the real pipeline into a scratch database (dropped afterwards);
    the job analyses the passes before `cut`. Raises AssertionError when a stage does not
    finish within its deadline."""
    started = time.monotonic()
    wall: dict[str, float] = {}
    broker = None if broker_url else EmbeddedBroker.start()
    url = broker_url or (broker.url if broker else "")
    work = Path(tempfile.mkdtemp(prefix="envpatrol-world-"))
    try:
        admin = admin_url or admin_database_url(start=lambda: EmbeddedDatabase.start().url)
        with scratch_database(admin, resolution) as database_url:
            return _run(
                scenario, speed, settings, cut, walk_nights, url, database_url, work, progress,
                started, wall,
            )  # fmt: skip
    finally:
        if broker is not None:
            broker.stop()


def _run(
    scenario: Scenario,
    speed: float,
    settings: AnalysisSettings,
    cut: datetime,
    walk_nights: bool,
    broker_url: str,
    database_url: str,
    work: Path,
    progress: Callable[[str], None],
    started: float,
    wall: dict[str, float],
) -> PipelineRun:
    mqtt = MqttSettings.from_url(broker_url)
    ingest = IngestService(
        IngestSettings(database_url=database_url, mqtt=mqtt, client_id="world-pipeline-ingest")
    )
    stop_ingest = threading.Event()
    ingest_thread = threading.Thread(target=ingest.run, args=(stop_ingest,), name="ingest")
    ingest_thread.start()
    try:
        # Readings published before the ingest subscribed would reach nobody.
        wait_until(lambda: ingest.wait_connected(0.1), 30, "the ingest to subscribe")
        records = _drive(scenario, speed, walk_nights, broker_url, work, progress)
        wall["drive_s"] = time.monotonic() - started
        produced = sum(r.readings for r in records.values())
        wait_until(
            lambda: ingest.counters.readings_inserted >= produced,
            120,
            f"the ingest to store {produced} readings",
            every=0.2,
        )
        wall["ingest_s"] = time.monotonic() - started
    finally:
        stop_ingest.set()
        ingest_thread.join(30)
    for name, (rows, distinct, low, high) in _stored_counts(database_url).items():
        record = records[name]
        record.stored = rows
        record.stored_seqs_ok = rows == distinct == high == record.readings and low == 1
    job = JobSettings(window=cut - scenario.start + timedelta(days=1), analysis=settings)
    with psycopg.connect(database_url) as conn:
        summary = run_once(conn, job, now=cut)
        table = read_passes(conn, summary.resolution, cut - job.window, cut, settings.pollutants())
    wall["job_s"] = time.monotonic() - started
    with api_server(database_url) as base:
        listed = api_hotspots(base)
    wall["api_s"] = time.monotonic() - started
    return PipelineRun(
        vehicles=records,
        inserted=ingest.counters.readings_inserted,
        dead_letters=ingest.counters.dead_letters,
        job=summary,
        table=table,
        hotspots=listed,
        wall_s=wall,
    )


def _drive(
    scenario: Scenario,
    speed: float,
    walk_nights: bool,
    broker_url: str,
    work: Path,
    progress: Callable[[str], None],
) -> dict[str, VehicleRecord]:
    """The boxes on pseudo-terminals and one agent each, from the world's start to the end of
    its last shift; what each box served and its agent made."""
    timeline = FastForward(scenario, speed, walk=walk_nights)
    records = {v.name: VehicleRecord(v.name) for v in scenario.vehicles}
    run = ScenarioRun(
        scenario,
        clock=timeline.sim_clock(scenario.start),
        on_served=lambda name, served: records[name].served.append(served),
    )
    agents: list[tuple[Agent, threading.Thread, threading.Event]] = []
    try:
        for vehicle, spec in zip(run.vehicles, scenario.vehicles, strict=True):
            record = records[vehicle.name]
            # the edge config `envpatrol sim --edge-configs` writes for the vehicle
            config = write_edge_config(work, vehicle, spec, speed, broker_url)
            agent = Agent(
                load_edge_settings(str(config), {}),
                on_discard=record.discards.append,
                clock=DriveClock(timeline),
            )
            stop = threading.Event()
            agents.append((agent, threading.Thread(target=agent.run, args=(stop,)), stop))
        run.start()
        for _, thread, _ in agents:
            thread.start()
        progress(
            f"driving {scenario.duration_h / 24:g} days of {len(agents)} vehicle(s) at "
            f"{speed:g}x: {timeline.wall_s:.0f} s wall"
        )
        wait_until(
            lambda: timeline.elapsed() >= timeline.end_s,
            timeline.wall_s * 1.5 + 60,
            "the end of the world's last shift",
            every=0.5,
        )
    finally:
        for _, thread, stop in agents:
            stop.set()
            if thread.is_alive():
                thread.join(30)
        run.stop()
    identities = {v.name: v.box.identity_answer() for v in run.vehicles}
    for agent, _, _ in agents:
        record = records[agent.settings.vehicle]
        record.readings = agent.readings
        record.accepted = agent.box.counters.ok
        record.requests = agent.box.counters.requests
        record.accounting = account(
            [s.frame for s in record.served],
            record.discards,
            record.readings,
            identities[record.name],
        )
    return records


# ---------------------------------------------------------------------------- the harness


def harness_table(
    scenario: Scenario,
    settings: AnalysisSettings,
    resolution: int,
) -> tuple[PassTable, int, frozenset[str]]:
    """The harness's passes of the world, its readings count and the channels measured."""
    readings = world_readings(scenario, settings.pollutants())
    measured = frozenset(ch for r in readings for ch in r.values)
    table = pass_table(vehicle_passes(readings, resolution))
    return table, int(sum(len(r.times) for r in readings)), measured


def cut_at(scenario: Scenario, table: PassTable, passes: int | None) -> datetime:
    """Where both sides are cut: the end of the first local day at which the median source's
    cell has `passes` passes (as the harness cuts), or the world's end."""
    if passes is None:
        return scenario.end
    tz = scenario.timezone_h
    first = int(local_day(np.array([scenario.start.timestamp()]), tz)[0])
    days = int(local_day(np.array([scenario.end.timestamp() - 1.0]), tz)[0]) - first + 1
    cells = nearest_cells(table, scenario.sources)
    day = first_day_reaching(daily_passes(table, cells, first, days, tz), passes)
    if day is None:
        return scenario.end
    return datetime.fromtimestamp((first + day + 1) * 86400.0 - tz * 3600.0, UTC)


# ---------------------------------------------------------------------------- scoring


@dataclass(frozen=True, slots=True)
class Scored:
    """One side's detections scored against the world's sources."""

    detections: int  # merged per pollutant
    counts: Mapping[str, Any]  # tp, fp, fn, dup, errors_m, fp_by_pollutant
    found: tuple[bool, ...]  # per true source (and pollutant)
    errors_m: tuple[float | None, ...]
    passes: int  # passes analysed
    # per true source: passes with a value of its pollutant through its cell (the driven cell
    # nearest its shape)
    cell_passes: tuple[int, ...] = ()

    @property
    def precision(self) -> float | None:
        tp, fp = self.counts["tp"], self.counts["fp"]
        return tp / (tp + fp) if tp + fp else None

    @property
    def recall(self) -> float | None:
        tp, fn = self.counts["tp"], self.counts["fn"]
        return tp / (tp + fn) if tp + fn else None


def api_detections(listed: Sequence[Mapping[str, Any]]) -> list[Detection]:
    """The API's hotspots as the harness ranks the detector's (`hotspot_detection`)."""
    return [
        Detection(
            h["pollutant"],
            h["lat"],
            h["lon"],
            RANK[Label(h["label"])] * 1e6 + h["excess"] / h["delta"],
            h["label"],
            h["stratum"],
        )
        for h in listed
    ]


def score_detections(
    raw: Sequence[Detection], truth: Sequence[TrueSource], table: PassTable | None = None
) -> Scored:
    """Detections merged per pollutant and matched to the sources, as the harness scores."""
    found = merged(raw)
    counts, hits, errors = score(found, truth)
    passes = (0, ()) if table is None else (len(table), cell_passes(table, truth))
    return Scored(len(found), counts, tuple(hits), tuple(errors), *passes)


def cell_passes(table: PassTable, truth: Sequence[TrueSource]) -> tuple[int, ...]:
    """For each true source, the passes with a value of its pollutant through its cell."""
    shapes = [
        Source(t.name, t.kind, t.lat, t.lon, {}, end=t.end, radius_m=t.radius_m)
        for t in {t.name: t for t in truth}.values()
    ]
    cell_of = dict(zip([s.name for s in shapes], nearest_cells(table, shapes), strict=True))
    out = []
    for t in truth:
        values = table.values.get(t.pollutant)
        mine = table.cell == cell_of[t.name]
        out.append(0 if values is None else int(np.count_nonzero(mine & ~np.isnan(values))))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Both sides on one world: which sources each found, and where they differ."""

    truth: tuple[TrueSource, ...]
    pipeline: Scored
    harness: Scored
    # Per side and pollutant: passes with a value, their median and spread (`pass_spread`)
    spread: Mapping[str, Mapping[str, tuple[int, float, float]]]

    @property
    def differ(self) -> list[int]:
        return [
            j
            for j, (a, b) in enumerate(zip(self.pipeline.found, self.harness.found, strict=True))
            if a != b
        ]


def compare(
    scenario: Scenario,
    pipeline: PipelineRun,
    settings: AnalysisSettings,
    cut: datetime,
    harness: PassTable,
    measured: frozenset[str],
) -> Comparison:
    """Score the API's hotspots and the detector on the harness's table, cut at `cut`."""
    truth = tuple(true_sources(scenario, scenario.sources, measured))
    background = dict(scenario.background.levels)

    def harness_side(table: PassTable) -> Scored:
        part = table.subset(table.start < cut.timestamp())
        found, _ = method_detections(part, settings, background)
        counts, hits, errors = score(found["detector"], truth)
        return Scored(
            len(found["detector"]),
            counts,
            tuple(hits),
            tuple(errors),
            len(part),
            cell_passes(part, truth),
        )

    pollutants = sorted({t.pollutant for t in truth})
    tables = {"pipeline": pipeline.table, "harness": harness}
    return Comparison(
        truth,
        score_detections(api_detections(pipeline.hotspots), truth, pipeline.table),
        harness_side(harness),
        {
            name: pass_spread(t.subset(t.start < cut.timestamp()), pollutants)
            for name, t in tables.items()
            if t is not None
        },
    )


def pass_spread(table: PassTable, pollutants: Sequence[str]) -> dict[str, tuple[int, float, float]]:
    """Per pollutant: passes with a value, their median and their spread about it (the mean
    absolute deviation, scaled to a normal's sigma). Not the MAD: a channel the box reports in
    whole register steps (default-multi's hcho, in ppb) has pass values on a lattice, and
    their MAD jumps between half a step and a step."""
    out = {}
    for p in pollutants:
        values = table.values.get(p)
        v = values[~np.isnan(values)] if values is not None else np.zeros(0)
        if not len(v):
            continue
        median = float(np.median(v))
        out[p] = (len(v), median, math.sqrt(math.pi / 2) * float(np.mean(np.abs(v - median))))
    return out


# ---------------------------------------------------------------------------- the report


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(
    scenario: Scenario, pipeline: PipelineRun, comparison: Comparison, harness_count: int
) -> str:
    sides = {"pipeline": comparison.pipeline, "harness": comparison.harness}
    lines = [
        f"world {scenario.name}: {scenario.description}",
        "readings: served "
        + str(sum(len(v.served) for v in pipeline.vehicles.values()))
        + f", made by the agents {pipeline.produced}, stored {pipeline.stored} "
        f"(ingest inserted {pipeline.inserted}, dead letters {pipeline.dead_letters}); "
        f"harness {harness_count}",
    ]
    for v in pipeline.vehicles.values():
        a = v.accounting
        lines.append(
            f"  {v.name}: served {len(v.served)}, readings {v.readings}, stored {v.stored} "
            f"(seq 1..n once each: {v.stored_seqs_ok}), discarded "
            f"{len(a.discarded) if a else '?'}, unread {len(a.unread) if a else '?'}"
        )
    lines.append("passes analysed: " + ", ".join(f"{k} {s.passes}" for k, s in sides.items()))
    spread = comparison.spread
    if spread:
        lines.append(
            "pass values (passes, median, spread): "
            + "; ".join(
                f"{p} "
                + " vs ".join(
                    f"{n} {m:.3g} {d:.3g}"
                    for n, m, d in (spread[k][p] for k in spread if p in spread[k])
                )
                for p in sorted({p for side in spread.values() for p in side})
            )
            + " ("
            + " vs ".join(spread)
            + ")"
        )
    schedules = {s.name: s.schedule for s in scenario.sources}
    header = (
        "| source | pollutant | sigma | schedule | "
        + " | ".join(f"{k}: error m (cell passes)" for k in sides)
        + " |"
    )
    lines += ["", header, "|" + "---|" * (4 + len(sides))]
    for j, t in enumerate(comparison.truth):
        schedule = schedules[t.name]
        when = schedule.kind + (f", {schedule.days:.0%} of days" if schedule.days < 1 else "")
        cells = [
            (f"found {_f(s.errors_m[j], 0)}" if s.found[j] else "missed")
            + (f" ({s.cell_passes[j]})" if s.cell_passes else "")
            for s in sides.values()
        ]
        lines.append(
            f"| {t.name} | {t.pollutant} | {t.sigma:g} | {when} | " + " | ".join(cells) + " |"
        )
    lines.append("")
    for k, s in sides.items():
        c = s.counts
        lines.append(
            f"{k}: {s.detections} detections, tp {c['tp']} fp {c['fp']} fn {c['fn']} "
            f"dup {c['dup']}, precision {_f(s.precision)}, recall {_f(s.recall)}, "
            f"false by pollutant {c['fp_by_pollutant']}"
        )
    differ = comparison.differ
    lines.append(
        "agreement: the same sources found"
        if not differ
        else "agreement: differ on "
        + ", ".join(
            f"{comparison.truth[j].name}/{comparison.truth[j].pollutant} (pipeline "
            f"{'found' if comparison.pipeline.found[j] else 'missed'})"
            for j in differ
        )
    )
    lines.append("wall: " + ", ".join(f"{k} {v:.0f} s" for k, v in pipeline.wall_s.items()))
    return "\n".join(lines)


def figures(
    scenario: Scenario, pipeline: PipelineRun, comparison: Comparison, harness_count: int
) -> dict[str, Any]:
    """What the report shows, as JSON: for the end-to-end test, which runs this module as a
    command (tests and bench never import each other)."""
    vehicles = {}
    for v in pipeline.vehicles.values():
        a = v.accounting
        vehicles[v.name] = {
            "served": len(v.served),
            "readings": v.readings,
            "accepted": v.accepted,
            "requests": v.requests,
            "stored": v.stored,
            "stored_seqs_ok": v.stored_seqs_ok,
            "taken": None if a is None else len(a.taken),
            "discarded": None if a is None else len(a.discarded),
            "unread": None if a is None else len(a.unread),
        }
    sides = {"pipeline": comparison.pipeline, "harness": comparison.harness}
    job = pipeline.job
    return {
        "world": scenario.name,
        "vehicles": vehicles,
        "produced": pipeline.produced,
        "inserted": pipeline.inserted,
        "stored": pipeline.stored,
        "dead_letters": pipeline.dead_letters,
        "harness_readings": harness_count,
        "job": None
        if job is None
        else {"run_id": job.run_id, "passes": job.passes, "hotspots": job.hotspots},
        "api_hotspots": len(pipeline.hotspots),
        "api_run_ids": sorted({h["run_id"] for h in pipeline.hotspots}),
        "truth": [
            {
                "name": t.name,
                "pollutant": t.pollutant,
                "sigma": t.sigma,
                "days": {s.name: s.schedule.days for s in scenario.sources}[t.name],
            }
            for t in comparison.truth
        ],
        "sides": {
            name: {
                "found": list(side.found),
                "errors_m": list(side.errors_m),
                "cell_passes": list(side.cell_passes),
                "passes": side.passes,
                "counts": dict(side.counts),
                "precision": side.precision,
                "recall": side.recall,
            }
            for name, side in sides.items()
        },
        "differ": comparison.differ,
        "wall_s": pipeline.wall_s,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="spurs", choices=FAMILIES)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--speed", type=float, default=400.0, help="simulated s per wall s")
    parser.add_argument("--settings", choices=sorted(SETTINGS), default="default")
    parser.add_argument("--resolution", type=int, default=10)
    parser.add_argument(
        "--passes", type=int, help="cut where the median source cell has this many passes"
    )
    parser.add_argument("--walk-nights", action="store_true", help="no fast-forward")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)
    # Timed-out polls of switched-off boxes are every night's business here, not news.
    logging.basicConfig(level=logging.ERROR)
    settings = SETTINGS[args.settings]
    scenario = generate_world(args.family, args.seed, days=args.days)
    clock = time.monotonic()
    harness, harness_count, measured = harness_table(scenario, settings, args.resolution)
    cut = cut_at(scenario, harness, args.passes)
    harness_s = time.monotonic() - clock
    print(
        f"harness: {harness_count} readings, {len(harness)} passes in {harness_s:.0f} s; "
        f"cut at {cut:%Y-%m-%d %H:%M} UTC",
        flush=True,
    )
    pipeline = run_pipeline(
        scenario,
        speed=args.speed,
        settings=settings,
        cut=cut,
        resolution=args.resolution,
        walk_nights=args.walk_nights,
        progress=lambda text: print(text, flush=True),
    )
    comparison = compare(
        scenario,
        pipeline,
        settings,
        cut,
        harness,
        measured,
    )
    print(report(scenario, pipeline, comparison, harness_count))
    if args.json:
        doc = figures(scenario, pipeline, comparison, harness_count)
        doc.update(family=args.family, seed=args.seed, days=args.days, speed=args.speed)
        doc.update(settings=args.settings, cut=cut.isoformat())
        Path(args.json).write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
