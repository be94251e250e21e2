"""Evaluation of hotspot detection on simulated patrols with known sources.

Each run is a patrol vehicle on the built-in Shuangjing loop (4.7 km), one shift a day at a
random daytime hour, two laps per shift: every lap passes every source once, so after d days a
source has 2 x d passes. A run has three point sources at random places on the route (a dust
source: PM10 + PM2.5, always on; a traffic junction: NO2 + CO + noise, always on; a restaurant:
cooking fume + odor + PM2.5, meal times only), each with an amplitude of k x the sensor noise of
each channel, k log-uniform in [3, 30]. Null runs are the same patrols with no source at all.

The path from the world to the detector is the real one minus the transport:
  scenario field (firmware_sim.field) -> box modules (firmware_sim.sensor: delay, lag, noise,
  drift, quantisation, warm-up) and GPS receiver (firmware_sim.gps_model: wander, multipath
  jumps, dropouts) -> a reading every 10 s with the edge's flags (no_fix, stationary, warmup)
  -> the ingest's pass builder (ingest.passes.passes_of, exactly what the ingest stores) ->
  the analysis' pass table (as hotspots.job reads it) -> hotspots.analysis.detect.detect, the
  function the job runs. By default no lag correction is applied, because the ingest stores
  uncorrected passes; `--lags settings` shifts each channel by the analysis settings' lag
  (hotspots.analysis.lag.correct_lag) before the passes are built, `--lags sim` by the simulated
  modules' true delay (what a well-estimated lag would give). The readings do not travel through the Modbus/NMEA pseudo-terminals, the edge agent,
  MQTT and PostgreSQL: that path is byte-exact but runs in real (or 60x) time, which would make
  a 30-pass sweep take hours; the end-to-end tests cover it.

For every run, resolution (H3 10 and 11) and pass count (2, 4, 8, 12, 20, 30) the detector and
the two naive baselines of hotspots.scoring run on the same passes and are scored there.

    .venv/bin/python -m bench.hotspot_eval            # the full sweep (a few minutes)
    .venv/bin/python -m bench.hotspot_eval --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import os
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import numpy as np

from edge.quality import QualitySettings
from firmware_sim.field import BACKGROUND, NOISE_SIGMA, PollutionField, Schedule, Source
from firmware_sim.gps_model import GpsErrorModel, GpsSpec
from firmware_sim.motion import PatrolDrive, SpeedProfile
from firmware_sim.route import BUILTIN_ROUTES, Route
from firmware_sim.sensor import DEFAULT_SENSORS, SensorArray
from hotspots.analysis.detect import detect
from hotspots.analysis.labels import RANK
from hotspots.analysis.lag import correct_lag
from hotspots.analysis.passes import PassTable, stationary_mask
from hotspots.analysis.settings import AnalysisSettings
from hotspots.floors import HOTSPOT_FLOORS
from hotspots.pass_reader import table_from_rows
from hotspots.scoring import (
    Counts,
    Detection,
    TrueSource,
    first_detection,
    gi_baseline,
    match,
    match_radius,
    merge,
    threshold_baseline,
)
from ingest.passes import DEFAULT_PASS_GAP, TrackPass, TrackPoint, passes_of

SCORED = ("pm25", "pm10", "no2", "co", "noise", "cooking_fume", "odor")
KINDS: Mapping[str, tuple[tuple[str, ...], str, float]] = {
    # kind: (channels, schedule, decay length m)
    "dust": (("pm10", "pm25"), "always", 35.0),
    "traffic": (("no2", "co", "noise"), "always", 45.0),
    "cooking": (("cooking_fume", "odor", "pm25"), "meals", 30.0),
}
PASS_COUNTS = (2, 4, 8, 12, 20, 30)
LAPS_PER_DAY = 2
POLL_S = 10.0
WARMUP_STAND_S = 600.0  # the vehicle stands at the start while the box warms up
FIRST_DAY = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
TIMEZONE_H = 8.0
SIGMA_RANGE = (3.0, 30.0)
MIN_SOURCE_GAP_M = 600.0
METHODS = ("detector", "threshold", "gi_raw")


@dataclass(frozen=True, slots=True)
class RunSpec:
    seed: int
    null: bool
    resolutions: tuple[int, ...]
    pass_counts: tuple[int, ...]
    lags: str = "none"  # "none" (as stored), "settings" (analysis defaults) or "sim"


@dataclass(frozen=True, slots=True)
class Readings:
    """One day's readings of the run's vehicle, in columns."""

    times: np.ndarray[Any, np.dtype[np.float64]]
    lat: np.ndarray[Any, np.dtype[np.float64]]  # as the receiver reported them
    lon: np.ndarray[Any, np.dtype[np.float64]]
    fix: np.ndarray[Any, np.dtype[np.bool_]]
    speed: np.ndarray[Any, np.dtype[np.float64]]
    warmup: np.ndarray[Any, np.dtype[np.bool_]]
    values: Mapping[str, np.ndarray[Any, np.dtype[np.float64]]]


def route() -> Route:
    return BUILTIN_ROUTES["shuangjing-loop"]


def make_sources(seed: int, loop: Route) -> tuple[list[Source], list[TrueSource]]:
    """Three sources at random places on the route, at least MIN_SOURCE_GAP_M apart along it."""
    rng = random.Random(f"sources:{seed}")
    while True:
        spots = sorted(rng.uniform(0, loop.length_m) for _ in KINDS)
        gaps = [b - a for a, b in itertools.pairwise(spots)]
        gaps.append(loop.length_m - spots[-1] + spots[0])
        if min(gaps) >= MIN_SOURCE_GAP_M:
            break
    rng.shuffle(spots)
    sources: list[Source] = []
    truth: list[TrueSource] = []
    for (kind, (channels, schedule, decay)), along in zip(KINDS.items(), spots, strict=True):
        k = math.exp(rng.uniform(math.log(SIGMA_RANGE[0]), math.log(SIGMA_RANGE[1])))
        point = loop.at(along)
        name = f"{kind}-{seed}"
        sources.append(
            Source(
                name,
                kind,
                point.lat,
                point.lon,
                {ch: k * NOISE_SIGMA[ch] for ch in channels},
                decay_m=decay,
                schedule=Schedule(kind="meals" if schedule == "meals" else "always"),
            )
        )
        truth.extend(TrueSource(name, kind, ch, point.lat, point.lon, k) for ch in channels)
    return sources, truth


def _time_at_distance(drive: PatrolDrive, distance: float) -> float:
    """Seconds after departure at which the drive has covered `distance` metres."""
    target = drive.offset_m + distance
    pieces = drive.pieces
    for piece, after in itertools.pairwise(pieces):
        if after.distance_m >= target and piece.speed_mps > 0:
            return piece.t + (target - piece.distance_m) / piece.speed_mps
    last = pieces[-1]
    return last.t + (target - last.distance_m) / last.speed_mps


def simulate_day(seed: int, day: int, field: PollutionField, loop: Route) -> Readings:
    """One shift: power on, stand while the box warms up, drive LAPS_PER_DAY laps, power off."""
    rng = random.Random(f"day:{seed}:{day}")
    local_start_h = rng.uniform(8.0, 18.0)
    power_on = FIRST_DAY + timedelta(days=day, hours=local_start_h - TIMEZONE_H)
    departure = power_on + timedelta(seconds=WARMUP_STAND_S)
    drive = PatrolDrive(
        loop,
        departure,
        SpeedProfile(),
        offset_m=rng.uniform(0, loop.length_m),
        seed=seed * 1000 + day,
        horizon_s=4 * 3600.0,
    )
    driving_s = _time_at_distance(drive, LAPS_PER_DAY * loop.length_m)
    t0 = power_on.timestamp()
    t_dep = departure.timestamp()
    specs = {ch: DEFAULT_SENSORS[ch] for ch in SCORED}
    sensors = SensorArray(specs, random.Random(f"sensors:{seed}:{day}"), t0)
    gps = GpsErrorModel(GpsSpec(), seed * 1000 + day)
    cache: dict[float, dict[str, float]] = {}

    def where(ts: float) -> tuple[float, float, float]:
        state = drive.state(datetime.fromtimestamp(ts, UTC))
        return state.lat, state.lon, (state.speed_mps if ts >= t_dep else 0.0)

    def truth(ts: float) -> dict[str, float]:
        key = round(ts, 3)
        found = cache.get(key)
        if found is None:
            lat, lon, _ = where(ts)
            found = field.true_values(lat, lon, datetime.fromtimestamp(ts, UTC))
            if len(cache) > 64:
                cache.clear()
            cache[key] = found
        return found

    times = np.arange(t0, t_dep + driving_s, POLL_S)
    n = len(times)
    lat = np.zeros(n)
    lon = np.zeros(n)
    fix = np.zeros(n, dtype=bool)
    speed = np.zeros(n)
    values = {ch: np.zeros(n) for ch in SCORED}
    warm_s = QualitySettings().warmup_s
    for i, ts in enumerate(times):
        measured = sensors.read(float(ts), truth)
        true_lat, true_lon, speed[i] = where(float(ts))
        seen = gps.observe(float(ts), true_lat, true_lon)
        lat[i], lon[i], fix[i] = seen.lat, seen.lon, seen.valid
        for ch in SCORED:
            values[ch][i] = measured[ch]
    return Readings(times, lat, lon, fix, speed, times - t0 < warm_s, values)


def day_passes(
    readings: Readings, resolution: int, settings: AnalysisSettings, lag_correction: bool
) -> list[TrackPass]:
    """The ingest's passes of one day: track points with the flags the edge would set."""
    stationary = stationary_mask(readings.times, readings.speed, settings)
    excluded = stationary | readings.warmup
    values = {
        ch: (
            correct_lag(readings.times, v, settings.lags_s.get(ch, 0.0), settings.lag_max_gap_s)
            if lag_correction and settings.lags_s.get(ch, 0.0) > 0
            else v
        )
        for ch, v in readings.values.items()
    }
    points: list[TrackPoint] = []
    for i in np.flatnonzero(readings.fix):
        cell = h3.str_to_int(h3.latlng_to_cell(readings.lat[i], readings.lon[i], resolution))
        kept = (
            {}
            if excluded[i]
            else {ch: float(v[i]) for ch, v in values.items() if not math.isnan(v[i])}
        )
        moment = datetime.fromtimestamp(float(readings.times[i]), UTC)
        points.append(TrackPoint(moment, int(i), int(cell), kept))
    return passes_of("patrol-01", points, DEFAULT_PASS_GAP)


def to_table(passes: Sequence[TrackPass]) -> PassTable:
    """The ingest's passes as the hotspot job reads them from `pass_stat`, through the job's own
    conversion (hotspots.pass_reader.table_from_rows): the energy mean for noise, else the mean; a
    pass without any usable value is not read."""
    channels = sorted({c for p in passes for c in p.stats})
    rows = []
    for p in passes:
        if not p.stats:
            continue
        row: list[object] = [p.vehicle, p.cell, p.start.timestamp(), p.end.timestamp()]
        for c in channels:
            s = p.stats.get(c)
            if s is None:
                row.extend((None, None))
            else:
                row.extend((s.energy_mean if s.energy_mean is not None else s.mean, s.n))
        rows.append(row)
    return table_from_rows(channels, rows)


def detector_objects(table: PassTable, settings: AnalysisSettings) -> list[Detection]:
    found = detect(table, settings, SCORED)
    raw = [
        Detection(
            h.pollutant,
            h.lat,
            h.lon,
            RANK[h.label] * 1e6 + h.excess / h.delta,
        )
        for h in found
    ]
    return _merged(raw)


def _merged(raw: Sequence[Detection]) -> list[Detection]:
    out: list[Detection] = []
    for pollutant in SCORED:
        mine = [d for d in raw if d.pollutant == pollutant]
        out.extend(merge(mine, match_radius(pollutant)))
    return out


def simulated_lags() -> dict[str, float]:
    """The delay of each simulated module: transport delay plus the first-order lag's time
    constant (T90 / ln 10), what a well-estimated lag (hotspots.analysis.lag) would find."""
    return {
        ch: DEFAULT_SENSORS[ch].delay_s + DEFAULT_SENSORS[ch].t90_s / math.log(10.0)
        for ch in SCORED
    }


def delta_of(pollutant: str, settings: AnalysisSettings) -> float:
    return max(
        settings.delta_noise_factor * settings.sensor_noise.get(pollutant, 0.0),
        settings.floors.get(pollutant, 0.0),
    )


def amplitude_over_delta(pollutant: str, sigma: float, settings: AnalysisSettings) -> float:
    """A source's amplitude at the source relative to the delta the detector needs."""
    return sigma * NOISE_SIGMA[pollutant] / delta_of(pollutant, settings)


def threshold_of(pollutant: str, settings: AnalysisSettings) -> float:
    """Baseline (a)'s fixed threshold: the nominal background level plus the delta of the
    store's floors, max(2 x sensor noise, HOTSPOT_FLOORS): the baseline stays what it was when
    the analysis' own delta came down to 2 x sensor noise (which would flag far more cells)."""
    return BACKGROUND[pollutant] + delta_of(pollutant, replace(settings, floors=HOTSPOT_FLOORS))


def run(spec: RunSpec) -> list[dict[str, Any]]:
    """Simulate one run and score every method at every resolution and pass count."""
    loop = route()
    sources, truth = ([], []) if spec.null else make_sources(spec.seed, loop)
    field = PollutionField(
        sources,
        seed=spec.seed,
        background={ch: BACKGROUND[ch] for ch in SCORED},
        timezone_h=TIMEZONE_H,
    )
    days = math.ceil(max(spec.pass_counts) / LAPS_PER_DAY)
    readings = [simulate_day(spec.seed, d, field, loop) for d in range(days)]
    records: list[dict[str, Any]] = []
    for resolution in spec.resolutions:
        # Passes built from lag-corrected readings need no second shift in detect.
        settings = AnalysisSettings(pass_lag=spec.lags == "none")
        if spec.lags == "sim":
            settings = replace(settings, lags_s=simulated_lags())
        per_day = [day_passes(r, resolution, settings, spec.lags != "none") for r in readings]
        for n in spec.pass_counts:
            table = to_table([p for day in per_day[: n // LAPS_PER_DAY] for p in day])
            objects = {
                "detector": detector_objects(table, settings),
                "threshold": _merged(
                    [
                        d
                        for ch in SCORED
                        for d in threshold_baseline(table, ch, threshold_of(ch, settings))
                    ]
                ),
                "gi_raw": _merged([d for ch in SCORED for d in gi_baseline(table, ch, settings)]),
            }
            for method, found in objects.items():
                for pollutant in SCORED:
                    mine = [d for d in found if d.pollutant == pollutant]
                    real = [t for t in truth if t.pollutant == pollutant]
                    m = match(mine, real)
                    hits = {j for _, j, _ in m.matched}
                    records.append(
                        {
                            "seed": spec.seed,
                            "null": spec.null,
                            "method": method,
                            "resolution": resolution,
                            "passes": n,
                            "pollutant": pollutant,
                            "tp": m.true_positives,
                            "fp": m.false_positives,
                            "fn": m.false_negatives,
                            "errors_m": [d for _, _, d in m.matched],
                            "sources": [
                                {
                                    "name": s.name,
                                    "kind": s.kind,
                                    "sigma": s.sigma,
                                    "found": j in hits,
                                }
                                for j, s in enumerate(real)
                            ],
                        }
                    )
    return records


# ---------------------------------------------------------------- reporting


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _counts(records: Sequence[dict[str, Any]]) -> Counts:
    c = Counts()
    for r in records:
        c.tp += r["tp"]
        c.fp += r["fp"]
        c.fn += r["fn"]
        c.errors_m.extend(r["errors_m"])
    return c


def report(records: Sequence[dict[str, Any]], spec: RunSpec, runs: int, nulls: int) -> str:
    lines: list[str] = []
    add = lines.append
    src = [r for r in records if not r["null"]]
    null = [r for r in records if r["null"]]

    pick = _pick
    for res in spec.resolutions:
        add(f"\n### H3 resolution {res}: all pollutants, {runs} source runs, {nulls} null runs\n")
        add(
            "| passes | precision | recall | F1 | median loc. error m | F1 threshold | F1 Gi* raw "
            "| false hotspots, null runs: detector | threshold | Gi* raw |"
        )
        add("|---|---|---|---|---|---|---|---|---|---|")
        for n in spec.pass_counts:
            d = _counts(pick(src, method="detector", resolution=res, passes=n))
            a = _counts(pick(src, method="threshold", resolution=res, passes=n))
            b = _counts(pick(src, method="gi_raw", resolution=res, passes=n))
            fp_null = [
                sum(r["fp"] for r in pick(null, method=m, resolution=res, passes=n))
                for m in METHODS
            ]
            add(
                f"| {n} | {_fmt(d.precision)} | {_fmt(d.recall)} | {_fmt(d.f1)} "
                f"| {_fmt(d.median_error_m, 0)} | {_fmt(a.f1)} | {_fmt(b.f1)} "
                f"| {fp_null[0]} | {fp_null[1]} | {fp_null[2]} |"
            )
        add(
            f"\n#### Resolution {res}: F1 with the null runs' false hotspots counted too"
            " (source and null runs pooled)\n"
        )
        add("| passes | detector | threshold | Gi* raw |")
        add("|---|---|---|---|")
        for n in spec.pass_counts:
            pooled = [
                _counts(pick(records, method=m, resolution=res, passes=n)).f1 for m in METHODS
            ]
            add(f"| {n} | " + " | ".join(_fmt(f) for f in pooled) + " |")
        add(f"\n#### Resolution {res}: detector per pollutant (precision / recall / F1)\n")
        add("| pollutant | " + " | ".join(f"{n} passes" for n in spec.pass_counts) + " |")
        add("|---|" + "---|" * len(spec.pass_counts))
        for pollutant in SCORED:
            cells = []
            for n in spec.pass_counts:
                c = _counts(
                    pick(src, method="detector", resolution=res, passes=n, pollutant=pollutant)
                )
                cells.append(f"{_fmt(c.precision)} / {_fmt(c.recall)} / {_fmt(c.f1)}")
            add(f"| {pollutant} | " + " | ".join(cells) + " |")
        lines.extend(_recall_sections(src, spec, res))
    return "\n".join(lines)


def _pick(rs: Sequence[dict[str, Any]], **keys: Any) -> list[dict[str, Any]]:
    return [r for r in rs if all(r[k] == v for k, v in keys.items())]


def _recall_sections(src: Sequence[dict[str, Any]], spec: RunSpec, res: int) -> list[str]:
    """Recall by strength and by amplitude / delta, and passes until first detection."""
    lines: list[str] = []
    add = lines.append
    pick = _pick
    add(f"\n#### Resolution {res}: detector recall by strength (amplitude / sensor sigma)\n")
    bins = ((3.0, 5.0), (5.0, 10.0), (10.0, 30.1))
    add("| strength | " + " | ".join(f"{n} passes" for n in spec.pass_counts) + " |")
    add("|---|" + "---|" * len(spec.pass_counts))
    for low, high in bins:
        cells = []
        for n in spec.pass_counts:
            hits = [
                s["found"]
                for r in pick(src, method="detector", resolution=res, passes=n)
                for s in r["sources"]
                if low <= s["sigma"] < high
            ]
            cells.append(f"{sum(hits)}/{len(hits)}" if hits else "-")
        add(f"| {low:g}-{min(high, 30):g} sigma | " + " | ".join(cells) + " |")
    add(
        f"\n#### Resolution {res}: detector recall by amplitude / delta"
        " (delta = max(2 x sensor noise, floor) of the analysis settings)\n"
    )
    settings = AnalysisSettings()
    ratio_bins = ((0.0, 1.0), (1.0, 2.0), (2.0, math.inf))
    add("| amplitude / delta | " + " | ".join(f"{n} passes" for n in spec.pass_counts) + " |")
    add("|---|" + "---|" * len(spec.pass_counts))
    for low, high in ratio_bins:
        cells = []
        for n in spec.pass_counts:
            hits = [
                s["found"]
                for r in pick(src, method="detector", resolution=res, passes=n)
                for s in r["sources"]
                if low <= amplitude_over_delta(r["pollutant"], s["sigma"], settings) < high
            ]
            cells.append(f"{sum(hits)}/{len(hits)}" if hits else "-")
        add(f"| {low:g}-{high:g} | " + " | ".join(cells) + " |")
    # Passes until first detection, per source and pollutant.
    first: dict[tuple[int, str, str], list[tuple[int, bool]]] = defaultdict(list)
    for r in pick(src, method="detector", resolution=res):
        for s in r["sources"]:
            first[(r["seed"], s["name"], r["pollutant"])].append((r["passes"], s["found"]))
    firsts = [first_detection(v) for v in first.values()]
    seen = sorted(f for f in firsts if f is not None)
    add(
        f"\nPasses until first detection (resolution {res}): median "
        f"{_fmt(statistics.median(seen) if seen else None, 0)} over the {len(seen)} "
        f"source-pollutants found by {max(spec.pass_counts)} passes; "
        f"{len(firsts) - len(seen)} of {len(firsts)} never found."
    )
    by_kind: dict[str, list[int | None]] = defaultdict(list)
    for (_seed, name, pollutant), v in first.items():
        by_kind[f"{name.split('-')[0]}/{pollutant}"].append(first_detection(v))
    add("\n| source / pollutant | median passes to first detection | never found |")
    add("|---|---|---|")
    for key in sorted(by_kind):
        vals = [v for v in by_kind[key] if v is not None]
        add(
            f"| {key} | {_fmt(statistics.median(vals) if vals else None, 0)} "
            f"| {len(by_kind[key]) - len(vals)} of {len(by_kind[key])} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 source runs, 4 null runs")
    parser.add_argument("--runs", type=int, default=12, help="runs with sources")
    parser.add_argument("--nulls", type=int, default=20, help="runs without sources")
    parser.add_argument("--resolutions", default="10,11")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--lags",
        choices=("none", "settings", "sim"),
        default="none",
        help="lag correction: none (as the ingest stores passes), the analysis settings' lags, "
        "or the simulated modules' true delays",
    )
    parser.add_argument("--json", help="write every record to this file")
    parser.add_argument("--from-json", help="report the records of an earlier --json run")
    args = parser.parse_args()
    runs, nulls = (3, 4) if args.quick else (args.runs, args.nulls)
    base = RunSpec(
        seed=0,
        null=False,
        resolutions=tuple(int(r) for r in args.resolutions.split(",")),
        pass_counts=PASS_COUNTS,
        lags=args.lags,
    )
    specs = [replace(base, seed=1000 + i) for i in range(runs)]
    specs += [replace(base, seed=5000 + i, null=True) for i in range(nulls)]
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as src:
            records = json.load(src)
        runs = len({r["seed"] for r in records if not r["null"]})
        nulls = len({r["seed"] for r in records if r["null"]})
    else:
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            for part in pool.imap_unordered(run, specs):
                records.extend(part)
    elapsed = time.perf_counter() - started
    print(
        f"## Hotspot evaluation: {runs} source runs, {nulls} null runs, "
        f"lag correction: {base.lags}, "
        f"{elapsed:.0f} s wall on {args.workers} workers"
    )
    print(report(records, base, runs, nulls))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(records, out)


if __name__ == "__main__":
    main()
