"""One world scored: its readings, passes at each resolution, and detection at N passes.

A world is a Scenario with sources (the truth) or without (a null world). For each resolution
the world's passes come from `bench.world_readings` (the product's pass builder and table
conversion); for each pass count N the table is cut at the end of the first local day at which
the median, over the world's sources, of passes through the source's cell (the driven cell
nearest the source) reaches N (`hotspots.scoring.first_day_reaching`). A null world is cut where
its twin with sources (the same world with its sources) would be cut. Then `detect` with the
default settings, and the two naive baselines of `hotspots.scoring`, on the same table; every
detector label counts, hotspots of all strata merged per pollutant (`merge`), matched to the
sources' shapes (`match_places`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import h3
import numpy as np

from bench.world_readings import (
    FloatArray,
    RoutePath,
    WindowReadings,
    pass_table,
    source_distance,
    vehicle_passes,
    world_readings,
)
from firmware_sim.field import BACKGROUND, NOISE_SIGMA, Source
from firmware_sim.patrol import build_route
from firmware_sim.scenario import Scenario, load_scenario
from hotspots.analysis.areas import Partition, halo_rings
from hotspots.analysis.by_area import detect_by_area
from hotspots.analysis.detect import Hotspot, detect
from hotspots.analysis.labels import RANK
from hotspots.analysis.passes import PassTable
from hotspots.analysis.settings import AnalysisSettings
from hotspots.scoring import (
    Detection,
    TrueSource,
    first_day_reaching,
    found_in_time,
    gap_m,
    gi_baseline,
    match_places,
    match_radius,
    merge,
    nearest_same_pollutant,
    schedule_strata,
    threshold_baseline,
    threshold_level,
)

METHODS = ("detector", "threshold", "gi_raw")


@dataclass(frozen=True, slots=True)
class WorldSpec:
    """Which world to build: a generated family's world (`family`, `seed`) or a scenario file
    (`path`, its seed replaced by `seed` for a null twin); `null`: without its sources."""

    index: int
    family: str | None
    seed: int
    null: bool
    days: int
    path: str | None = None
    file_days: int | None = None  # scenario files: run this many days instead of the file's

    @property
    def key(self) -> str:
        where = self.family if self.path is None else self.path
        return f"{where}#{self.seed}{'-null' if self.null else ''}"


def build_world(spec: WorldSpec) -> tuple[Scenario, tuple[Source, ...]]:
    """The world to simulate and the sources that place its cut (its own, or for a null world
    those of its twin)."""
    if spec.path is not None:
        base = load_scenario(spec.path)
        if spec.file_days is not None:
            base = replace(base, duration_h=24.0 * spec.file_days)
        if not spec.null:
            return base, base.sources
        return replace(base, seed=spec.seed, sources=()), base.sources
    from firmware_sim import worlds  # being written alongside; the harness runs without it

    assert spec.family is not None
    world = worlds.generate_world(spec.family, spec.seed, null=spec.null, days=spec.days)
    if not spec.null:
        return world, world.sources
    twin = worlds.generate_world(spec.family, spec.seed, null=False, days=spec.days)
    return world, twin.sources


# ---------------------------------------------------------------------------- the truth


def sensor_noise(scenario: Scenario, channel: str) -> float:
    """The simulated module's noise (1 sigma), or the default module's."""
    spec = scenario.sensors.get(channel)
    return spec.noise if spec is not None and spec.noise > 0 else NOISE_SIGMA[channel]


def true_sources(
    scenario: Scenario,
    sources: Sequence[Source],
    measured: frozenset[str],
    near: Callable[[Source, str], bool] | None = None,
) -> list[TrueSource]:
    """One object per source and pollutant that some vehicle's box measures and the analysis
    analyses (with `near`: measures within reach of the source): in the sensor's sigmas, with
    the source's shape."""
    out = []
    for s in sources:
        for ch, amplitude in sorted(s.amplitude.items()):
            if ch not in measured or (near is not None and not near(s, ch)):
                continue
            noise = sensor_noise(scenario, ch)
            # amplitudes are written to 4 significant figures: 3 sigma may read 2.9999...
            sigma = round(amplitude / noise, 3)
            out.append(TrueSource(s.name, s.kind, ch, s.lat, s.lon, sigma, s.end, s.radius_m))
    return out


def measured_near(readings: Sequence[WindowReadings]) -> Callable[[Source, str], bool]:
    """Whether some box measured a channel within the match radius of a source's shape: a
    source whose street is driven only by boxes without its channel cannot be found by any
    method, so it is not scored (as a channel no box measures is not)."""

    def near(source: Source, channel: str) -> bool:
        reach = match_radius(channel)
        for r in readings:
            values = r.values.get(channel)
            if values is None:
                continue
            usable = ~np.isnan(values)
            if usable.any() and bool(
                (source_distance(source, r.lat[usable], r.lon[usable]) <= reach).any()
            ):
                return True
        return False

    return near


def source_classes(
    scenario: Scenario,
    sources: Sequence[Source],
    truth: Sequence[TrueSource],
    settings: AnalysisSettings,
) -> list[dict[str, Any]]:
    """What the report groups sources by, per object of `truth`."""
    by_name = {s.name: s for s in sources}
    offstreet = {s.name: street_distance(scenario, s) for s in sources}
    pairs = nearest_same_pollutant(truth)
    out = []
    for t, pair in zip(truth, pairs, strict=True):
        s = by_name[t.name]
        schedule = s.schedule
        geometry = "area" if s.radius_m > 0 else ("line" if s.end is not None else "point")
        strata = (
            sorted(schedule_strata(schedule.windows, settings.strata))
            if schedule.kind == "meals"
            else []
        )
        out.append(
            {
                "name": t.name,
                "kind": t.kind,
                "pollutant": t.pollutant,
                "lat": t.lat,
                "lon": t.lon,
                "end": list(t.end) if t.end is not None else None,
                "radius_m": t.radius_m,
                "sigma": t.sigma,
                "geometry": geometry,
                "schedule": schedule.kind,
                "days": schedule.days,
                "offstreet_m": offstreet[t.name],
                "pair_m": pair,
                "strata": strata,
            }
        )
    return out


def street_distance(scenario: Scenario, source: Source) -> float:
    """How far the source's shape is from the nearest street any route drives (metres)."""
    best = math.inf
    for spec in scenario.routes.values():
        path = RoutePath(build_route(spec))
        lat, lon = path.at(np.arange(0.0, path.length_m, 2.0))
        best = min(best, float(source_distance(source, lat, lon).min()))
    return best


# ---------------------------------------------------------------------------- cells and cuts


def nearest_cells(table: PassTable, sources: Sequence[Source]) -> list[int]:
    """For each source, the driven cell (one with passes) whose centre is nearest its shape."""
    cells = np.unique(table.cell)
    if not len(cells):
        return [0 for _ in sources]
    centres = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in cells])
    out = []
    for s in sources:
        d = source_distance(s, centres[:, 0], centres[:, 1])
        out.append(int(cells[int(np.argmin(d))]))
    return out


def local_day(epoch_s: FloatArray, timezone_h: float) -> np.ndarray[Any, np.dtype[np.int64]]:
    day: np.ndarray[Any, np.dtype[np.int64]] = np.floor(
        (epoch_s + timezone_h * 3600.0) / 86400.0
    ).astype(np.int64)
    return day


def daily_passes(
    table: PassTable, cells: Sequence[int], first_day: int, days: int, timezone_h: float
) -> list[list[int]]:
    """Passes through each cell per local day, from `first_day` for `days` days."""
    day = local_day(table.start, timezone_h) - first_day
    out = []
    for cell in cells:
        mine = day[(table.cell == cell) & (day >= 0) & (day < days)]
        out.append(np.bincount(mine, minlength=days).tolist())
    return out


# ---------------------------------------------------------------------------- one world


def hotspot_detection(h: Hotspot) -> Detection:
    return Detection(
        h.pollutant, h.lat, h.lon, RANK[h.label] * 1e6 + h.excess / h.delta, h.label, h.stratum
    )


# (H3 resolution of the areas, halo in metres): the detector runs area by area as the job does
# (hotspots.analysis.by_area); None: over the whole world at once. Set by `--area-resolution`.
AREAS: tuple[int, float] | None = None


def merged(raw: Sequence[Detection]) -> list[Detection]:
    """One detection per place and pollutant (hotspots of several strata, adjacent clusters)."""
    out: list[Detection] = []
    for pollutant in sorted({d.pollutant for d in raw}):
        out.extend(merge([d for d in raw if d.pollutant == pollutant], match_radius(pollutant)))
    return out


def method_detections(
    table: PassTable, settings: AnalysisSettings, background: Mapping[str, float]
) -> tuple[dict[str, list[Detection]], list[Detection]]:
    """Each method's merged detections on the table, and the detector's hotspots unmerged."""
    pollutants = [p for p in settings.pollutants() if p in table.values]
    if AREAS is None:
        found = detect(table, settings, pollutants)
    else:
        cell_resolution = h3.get_resolution(h3.int_to_str(int(table.cell[0])))
        found = detect_by_area(
            replace(
                table,
                values={p: table.values[p] for p in pollutants},
                counts={p: table.counts[p] for p in pollutants},
            ),
            settings,
            Partition(AREAS[0], cell_resolution),
            halo_rings(cell_resolution, AREAS[1]),
        )
    raw = [hotspot_detection(h) for h in found]
    threshold = [
        d
        for p in pollutants
        for d in threshold_baseline(
            table, p, threshold_level(p, background.get(p, BACKGROUND.get(p, 0.0)), settings)
        )
    ]
    gi = [d for p in pollutants for d in gi_baseline(table, p, settings)]
    return {"detector": merged(raw), "threshold": merged(threshold), "gi_raw": merged(gi)}, raw


def score(
    found: Sequence[Detection], truth: Sequence[TrueSource]
) -> tuple[dict[str, Any], list[bool], list[float | None]]:
    """One method's counts on one world, which objects it found and how far off it was."""
    m = match_places(found, truth)
    hit: dict[int, float] = {j: d for _, j, d in m.matched}
    used = {i for i, _, _ in m.matched}
    matched = [truth[j] for j in hit]
    false_by_pollutant: dict[str, int] = {}
    for i, d in enumerate(found):
        duplicate = any(
            t.pollutant == d.pollutant and t.distance_m(d.lat, d.lon) <= match_radius(t.pollutant)
            for t in matched
        )
        if i not in used and not duplicate:
            false_by_pollutant[d.pollutant] = false_by_pollutant.get(d.pollutant, 0) + 1
    counts = {
        "tp": m.true_positives,
        "fp": m.false_positives,
        "fn": m.false_negatives,
        "dup": m.duplicates,
        "errors_m": [round(d, 1) for _, _, d in m.matched],
        "fp_by_pollutant": false_by_pollutant,
    }
    return (
        counts,
        [j in hit for j in range(len(truth))],
        [round(hit[j], 1) if j in hit else None for j in range(len(truth))],
    )


def close_pairs(truth: Sequence[TrueSource], within_m: float = 400.0) -> list[list[float]]:
    """Pairs of objects of one pollutant closer than within_m: [j, k, gap m]."""
    return [
        [j, k, round(g, 1)]
        for j, a in enumerate(truth)
        for k in range(j + 1, len(truth))
        if truth[k].pollutant == a.pollutant
        and truth[k].name != a.name
        and (g := gap_m(a, truth[k])) < within_m
    ]


class StreetSignal:
    """What each source adds to the readings its boxes take, through the modules' lag and
    warm-up: the world simulated once more with noiseless, driftless modules, with and without
    its sources (same drives, fixes and background), and the difference of the two.

    A source's street signal at a resolution is the mean of that difference over the usable
    readings in the source's scored cell, in sensor sigmas: what the detector can see of it
    there, an intermittent source's off-time included. A point source beside a slow gas cell
    driven past at speed shows a fraction of its amplitude."""

    def __init__(self, scenario: Scenario, channels: Sequence[str]) -> None:
        clean = replace(
            scenario,
            sensors={
                ch: replace(s, noise=0.0, drift_per_h=0.0, quantum=0.0)
                for ch, s in scenario.sensors.items()
            },
        )
        self.windows = world_readings(clean, channels)
        off = world_readings(replace(clean, sources=()), channels)
        self.added = [
            {ch: w.values[ch] - o.values[ch] for ch in w.values}
            for w, o in zip(self.windows, off, strict=True)
        ]
        self._cells: dict[int, list[np.ndarray[Any, Any]]] = {}
        self._clean = clean
        self._off = off
        self._channels = tuple(channels)
        self._alone: dict[str, list[dict[str, np.ndarray[Any, Any]]]] = {}

    def alone(self, name: str) -> list[dict[str, np.ndarray[Any, Any]]]:
        """What the source called `name` adds by itself, per window and channel."""
        if name not in self._alone:
            source = next(s for s in self._clean.sources if s.name == name)
            on = world_readings(replace(self._clean, sources=(source,)), self._channels)
            self._alone[name] = [
                {ch: w.values[ch] - o.values[ch] for ch in w.values}
                for w, o in zip(on, self._off, strict=True)
            ]
        return self._alone[name]

    def oracle_snr(
        self,
        name: str,
        channel: str,
        noise: float,
        cut: float,
        within: TrueSource | None = None,
        resolution: int | None = None,
        blind: bool = False,
    ) -> float | None:
        """The signal-to-noise ratio of the best test for this one source that any method could
        run on the readings before `cut`: one that knows where the source is and what it adds
        to every reading, in white noise of the sensor's sigma (the Neyman-Pearson test, whose
        statistic is the readings weighted by the noiseless signal). No drift, no background
        variation, no quantisation: a bound, not an estimate. With `within`, only the readings
        within that source's match radius count: what a method placing the source within reach
        can draw on, if it uses no reading further away. With `resolution`, the test sees only
        each pass's mean (consecutive readings in one H3 cell), as a method working on passes
        does: the signal of a pass is its readings' mean signal, with n readings' weight. With
        `blind` as well, the test knows the place but not when the source works: every reading
        of a cell carries the cell's mean signal over the whole period (a test of cell means,
        the cells within reach combined at their best weights)."""
        if noise <= 0:
            return None
        energy = 0.0
        cells = self.cells(resolution) if resolution is not None else [None] * len(self.windows)
        sums: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = []
        for w, added, cell in zip(self.windows, self.alone(name), cells, strict=True):
            values = added.get(channel)
            if values is None:
                continue
            use = w.fix & ~w.stationary & ~w.flagged[channel] & ~np.isnan(values) & (w.times < cut)
            if within is not None:
                use &= shape_distance_m(within, w.lat, w.lon) <= match_radius(channel)
            if cell is None:
                energy += float(np.square(values[use]).sum())
                continue
            c = cell[use]
            if len(c) == 0:
                continue
            if blind:
                sums.append((c, values[use]))
                continue
            starts = np.ones(len(c), dtype=bool)
            starts[1:] = c[1:] != c[:-1]
            passes = np.cumsum(starts) - 1
            n = np.bincount(passes).astype(np.float64)
            mean = np.bincount(passes, weights=values[use]) / n
            energy += float((n * np.square(mean)).sum())
        if sums:
            every = np.concatenate([c for c, _ in sums])
            signal = np.concatenate([v for _, v in sums])
            _, at = np.unique(every, return_inverse=True)
            total = np.bincount(at, weights=signal)
            energy += float((np.square(total) / np.bincount(at)).sum())
        return round(float(np.sqrt(energy)) / noise, 3)

    def cells(self, resolution: int) -> list[np.ndarray[Any, Any]]:
        """Each reading's cell (0 without a fix), per window."""
        if resolution not in self._cells:
            self._cells[resolution] = [
                np.array(
                    [
                        h3.str_to_int(h3.latlng_to_cell(la, lo, resolution)) if ok else 0
                        for la, lo, ok in zip(
                            w.lat.tolist(), w.lon.tolist(), w.fix.tolist(), strict=True
                        )
                    ],
                    dtype=np.int64,
                )
                for w in self.windows
            ]
        return self._cells[resolution]

    def in_cell(self, resolution: int, cell: int, channel: str, noise: float) -> float | None:
        total, n = 0.0, 0
        for w, added, cells in zip(self.windows, self.added, self.cells(resolution), strict=True):
            values = added.get(channel)
            if values is None:
                continue
            use = (cells == cell) & ~w.stationary & ~w.flagged[channel] & ~np.isnan(values)
            total += float(values[use].sum())
            n += int(use.sum())
        return None if n == 0 or noise <= 0 else round(total / n / noise, 3)

    def on_off(
        self, name: str, resolution: int, cell: int, channel: str, cut: float
    ) -> tuple[int, int]:
        """Passes of the source's cell before `cut` on which the source (alone) adds at least a
        fifth of its largest pass signal there ("on"), and passes on which it adds under a
        twentieth ("off"): without both, nothing in the data can tell an intermittent source from
        a steady one."""
        means: list[float] = []
        for w, added, cells in zip(
            self.windows, self.alone(name), self.cells(resolution), strict=True
        ):
            values = added.get(channel)
            if values is None:
                continue
            use = (
                (cells == cell)
                & ~w.stationary
                & ~w.flagged[channel]
                & ~np.isnan(values)
                & (w.times < cut)
            )
            at = np.flatnonzero(use)
            if len(at) == 0:
                continue
            starts = np.ones(len(at), dtype=bool)
            starts[1:] = np.diff(at) > 1
            passes = np.cumsum(starts) - 1
            means.extend((np.bincount(passes, weights=values[at]) / np.bincount(passes)).tolist())
        if not means:
            return 0, 0
        top = max(means)
        if top <= 0:
            return 0, len(means)
        return sum(m >= 0.2 * top for m in means), sum(m < 0.05 * top for m in means)


def shape_distance_m(
    source: TrueSource, lat: np.ndarray[Any, Any], lon: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """`TrueSource.distance_m` for arrays of positions, on a local plane (sources span < 1 km)."""
    ky = 111_320.0
    kx = ky * math.cos(math.radians(source.lat))
    x = (lon - source.lon) * kx
    y = (lat - source.lat) * ky
    if source.end is None:
        d = np.hypot(x, y)
    else:
        ex = (source.end[1] - source.lon) * kx
        ey = (source.end[0] - source.lat) * ky
        length2 = ex * ex + ey * ey
        f = np.clip((x * ex + y * ey) / length2, 0.0, 1.0) if length2 > 0 else np.zeros_like(x)
        d = np.hypot(x - f * ex, y - f * ey)
    return np.maximum(0.0, d - source.radius_m)


def truth_bounds(
    signal: StreetSignal,
    scenario: Scenario,
    truth: Sequence[TrueSource],
    cell_of: Mapping[str, int],
    resolution: int,
    cut: float,
) -> dict[str, list[Any]]:
    """Per source, the signal-to-noise ratios of the tests that know it (StreetSignal.oracle_snr:
    every reading; pass means within reach; cell means within reach without its schedule) and
    its cell's passes on and off (StreetSignal.on_off)."""

    def snr(t: TrueSource, **kw: Any) -> float | None:
        return signal.oracle_snr(
            t.name, t.pollutant, sensor_noise(scenario, t.pollutant), cut, **kw
        )

    return {
        "oracle_snr": [snr(t) for t in truth],
        "oracle_pass_snr": [snr(t, within=t, resolution=resolution) for t in truth],
        "oracle_blind_snr": [snr(t, within=t, resolution=resolution, blind=True) for t in truth],
        "on_off": [
            list(signal.on_off(t.name, resolution, cell_of[t.name], t.pollutant, cut))
            for t in truth
        ],
    }


def evaluate_world(
    spec: WorldSpec, resolutions: Sequence[int], pass_counts: Sequence[int]
) -> dict[str, Any]:
    """Simulate one world and score every method at every resolution and pass count."""
    settings = AnalysisSettings()
    clock = time.perf_counter()
    scenario, places = build_world(spec)
    readings = world_readings(scenario, settings.pollutants())
    timing = {"simulate_s": time.perf_counter() - clock, "passes_s": 0.0, "detect_s": 0.0}
    measured = frozenset(ch for r in readings for ch in r.values)
    near = measured_near(readings)
    truth = true_sources(scenario, scenario.sources, measured, near)
    classes = source_classes(scenario, scenario.sources, truth, settings)
    profiles = {v.name: v.profile for v in scenario.vehicles}
    tz = scenario.timezone_h
    first_day = int(local_day(np.array([scenario.start.timestamp()]), tz)[0])
    days = int(local_day(np.array([scenario.end.timestamp() - 1.0]), tz)[0]) - first_day + 1
    background = dict(scenario.background.levels)
    clock = time.perf_counter()
    signal = StreetSignal(scenario, settings.pollutants()) if truth else None
    timing["simulate_s"] += time.perf_counter() - clock
    records: list[dict[str, Any]] = []
    for resolution in resolutions:
        clock = time.perf_counter()
        table = pass_table(vehicle_passes(readings, resolution))
        timing["passes_s"] += time.perf_counter() - clock
        cells = nearest_cells(table, places)
        daily = daily_passes(table, cells, first_day, days, tz)
        cell_of = dict(zip([s.name for s in places], cells, strict=True))
        seen_by = _profiles_at(table, truth, cell_of, profiles)
        street = (
            [
                signal.in_cell(
                    resolution, cell_of[t.name], t.pollutant, sensor_noise(scenario, t.pollutant)
                )
                for t in truth
            ]
            if signal is not None
            else []
        )
        for n in pass_counts:
            day = first_day_reaching(daily, n)
            record: dict[str, Any] = {
                "world": spec.key,
                "null": spec.null,
                "resolution": resolution,
                "passes": n,
                "day": day,
                "profiles": seen_by,
                "signal": street,
            }
            records.append(record)
            if day is None:
                continue
            cut = (first_day + day + 1) * 86400.0 - tz * 3600.0
            part = table.subset(table.start < cut)
            clock = time.perf_counter()
            found, raw = method_detections(part, settings, background)
            timing["detect_s"] += time.perf_counter() - clock
            record["methods"] = {}
            for method in METHODS:
                counts, hits, errors = score(found[method], truth)
                record["methods"][method] = counts
                record.setdefault("found", {})[method] = hits
                if method == "detector":
                    record["errors_m"] = errors
            record["in_time"] = [
                found_in_time(raw, t, frozenset(c["strata"]))
                for t, c in zip(truth, classes, strict=True)
            ]
            if signal is not None:
                record.update(truth_bounds(signal, scenario, truth, cell_of, resolution, cut))
            record["cell_passes"] = [
                int(np.count_nonzero(part.cell == cell_of[t.name])) for t in truth
            ]
    return {
        "world": spec.key,
        "family": spec.family,
        "file": spec.path,
        "seed": spec.seed,
        "null": spec.null,
        "vehicles": len(scenario.vehicles),
        "profiles": sorted(set(profiles.values())),
        "days": days,
        "readings": int(sum(len(r.times) for r in readings)),
        "sources": classes,
        "pairs": close_pairs(truth),
        "unmeasured": sorted(
            f"{s.name}/{ch}"
            for s in scenario.sources
            for ch in s.amplitude
            if ch in settings.pollutants() and (ch not in measured or not near(s, ch))
        ),
        "records": records,
        "timing": {k: round(v, 2) for k, v in timing.items()},
    }


def _profiles_at(
    table: PassTable,
    truth: Sequence[TrueSource],
    cell_of: Mapping[str, int],
    profiles: Mapping[str, str],
) -> list[str]:
    """For each object, the profiles of the boxes that measured its pollutant in its cell."""
    out = []
    for t in truth:
        values = table.values.get(t.pollutant)
        if values is None:
            out.append("none")
            continue
        mine = (table.cell == cell_of[t.name]) & ~np.isnan(values)
        seen = sorted({profiles[table.vehicles[v]] for v in np.unique(table.vehicle[mine])})
        out.append("+".join(seen) if seen else "none")
    return out
