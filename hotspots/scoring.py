"""Scoring hotspot detection against known sources: matching, metrics and the naive baselines.

Pure functions of detections, true sources and passes (no simulator, no database): the one
definition of every figure the evaluation harness (bench/hotspot_worlds.py) reports. The rules
(docs/hotspot-evaluation.md, "Scoring"):

- objects, not cells: the detector's hotspots (all strata) and each baseline's clusters of
  adjacent flagged cells are first merged per pollutant, so one place found in the all-day and
  the lunch stratum counts once (`merge`);
- a detection matches a true source of its pollutant within 75 m (100 m for the slow
  electrochemical and NDIR channels, whose lag smears a source further) of the source's shape (a
  point, a line, or the area within a radius of either); matching is greedy one-to-one by
  distance (`match`); `match_places` also tells apart the further detections of a matched source
  (a long restaurant street found at two places) from false ones;
- precision, recall and F1 are computed from the summed counts of a group of runs
  (`Counts.add`), not averaged per run, so runs with few objects do not dominate;
- localisation error is the distance from a matched detection's centre to its source.

The two naive baselines run on the very same passes as the detector:
(a) `threshold_baseline`: a cell whose mean of pass values lies above a fixed threshold;
(b) `gi_baseline`: Getis-Ord Gi* on the raw cell means, one-sided p < alpha, no FDR, no
    eligibility rule.

Sources are described by class for the report (`strength_band`, `days_band`, `offstreet_band`,
`pair_band`, with `gap_m` and `nearest_same_pollutant`); a source on only at some times is also
scored by whether it was found as such (`schedule_strata`, `found_in_time`); and evaluation at N
passes cuts the data at the first day the sources' median cell has N passes (`first_day_reaching`).

The spatial statistics (scipy, esda) are imported by `gi_baseline` when it runs, not with this
module: the matching and the counts need neither.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import h3
import numpy as np

from edge.quality import distance_m, segment_distance_m
from hotspots.analysis.clusters import components
from hotspots.analysis.grouping import FloatArray, IntArray, dense_labels, group_count, group_sum
from hotspots.analysis.passes import PassTable
from hotspots.analysis.settings import AnalysisSettings, Stratum
from hotspots.floors import HOTSPOT_FLOORS

__all__ = [
    "MATCH_RADIUS_M",
    "SLOW_CHANNELS",
    "SLOW_MATCH_RADIUS_M",
    "CellMeans",
    "Counts",
    "Detection",
    "Match",
    "TrueSource",
    "cell_means",
    "days_band",
    "distance_m",
    "first_day_reaching",
    "first_detection",
    "found_in_time",
    "gap_m",
    "gi_baseline",
    "match",
    "match_places",
    "match_radius",
    "merge",
    "nearest_same_pollutant",
    "offstreet_band",
    "pair_band",
    "schedule_strata",
    "segment_distance_m",
    "signal_band",
    "strength_band",
    "threshold_baseline",
    "threshold_level",
]

MATCH_RADIUS_M = 75.0
SLOW_MATCH_RADIUS_M = 100.0
# Electrochemical gas cells and NDIR CO2 respond over 30-120 s (hotspots.md, "Sensor lag").
SLOW_CHANNELS = frozenset({"no2", "o3", "co", "so2", "hcho", "co2"})


def match_radius(pollutant: str) -> float:
    return SLOW_MATCH_RADIUS_M if pollutant in SLOW_CHANNELS else MATCH_RADIUS_M


@dataclass(frozen=True, slots=True)
class TrueSource:
    """One pollutant of one simulated source: the object a detector should find.

    Its shape: the point (lat, lon), or the line from there to `end`; with `radius_m` > 0 the
    area within that radius of the point or line."""

    name: str
    kind: str  # dust, traffic, cooking ...
    pollutant: str
    lat: float
    lon: float
    sigma: float  # amplitude at the source in units of the channel's sensor noise
    end: tuple[float, float] | None = None
    radius_m: float = 0.0

    def distance_m(self, lat: float, lon: float) -> float:
        """From (lat, lon) to the nearest point of the source's shape (0 inside an area)."""
        if self.end is None:
            d = distance_m(self.lat, self.lon, lat, lon)
        else:
            d = segment_distance_m((self.lat, self.lon), self.end, (lat, lon))
        return max(0.0, d - self.radius_m)

    def outline(self, step_m: float = 5.0) -> list[tuple[float, float]]:
        """Points along the source's point or line, at most step_m apart."""
        if self.end is None:
            return [(self.lat, self.lon)]
        length = distance_m(self.lat, self.lon, *self.end)
        n = max(1, math.ceil(length / step_m))
        return [
            (
                self.lat + (self.end[0] - self.lat) * i / n,
                self.lon + (self.end[1] - self.lon) * i / n,
            )
            for i in range(n + 1)
        ]


@dataclass(frozen=True, slots=True)
class Detection:
    """One reported place: a hotspot of the detector or a cluster of a baseline."""

    pollutant: str
    lat: float
    lon: float
    strength: float = 0.0  # what ranks detections when merging (excess, cell mean ...)
    label: str = ""  # the detector's label (persistent, candidate, episodic)
    stratum: str = ""  # the detector's time-of-day stratum


@dataclass(frozen=True, slots=True)
class Match:
    matched: tuple[tuple[int, int, float], ...]  # (detection, source, distance m)
    false_positives: int
    false_negatives: int
    # Detections within reach of a source another detection matched (match_places only).
    duplicates: int = 0

    @property
    def true_positives(self) -> int:
        return len(self.matched)


def merge(detections: Sequence[Detection], radius_m: float) -> list[Detection]:
    """One detection per place: strongest first, any later one within radius_m of a kept one
    (same pollutant) is the same object and is dropped."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: (-d.strength, d.pollutant, d.lat, d.lon)):
        if any(
            k.pollutant == det.pollutant and distance_m(k.lat, k.lon, det.lat, det.lon) <= radius_m
            for k in kept
        ):
            continue
        kept.append(det)
    return kept


def match(detections: Sequence[Detection], sources: Sequence[TrueSource]) -> Match:
    """Greedy one-to-one matching by distance to the source's shape, same pollutant, within the
    pollutant's radius."""
    pairs = sorted(
        (dist, i, j)
        for i, d in enumerate(detections)
        for j, s in enumerate(sources)
        if d.pollutant == s.pollutant
        for dist in (s.distance_m(d.lat, d.lon),)
    )
    used_d: set[int] = set()
    used_s: set[int] = set()
    matched: list[tuple[int, int, float]] = []
    for dist, i, j in pairs:
        if dist > match_radius(sources[j].pollutant) or i in used_d or j in used_s:
            continue
        used_d.add(i)
        used_s.add(j)
        matched.append((i, j, dist))
    return Match(
        matched=tuple(matched),
        false_positives=len(detections) - len(matched),
        false_negatives=len(sources) - len(matched),
    )


def match_places(detections: Sequence[Detection], sources: Sequence[TrueSource]) -> Match:
    """`match`, and of the detections it leaves over, those within the match radius of a
    matched source's shape counted as duplicates, not as false positives: the same source
    found at a second place (a long line or a large area reaches beyond one detection)."""
    m = match(detections, sources)
    used = {i for i, _, _ in m.matched}
    found = [sources[j] for _, j, _ in m.matched]
    duplicates = sum(
        1
        for i, d in enumerate(detections)
        if i not in used
        and any(
            s.pollutant == d.pollutant and s.distance_m(d.lat, d.lon) <= match_radius(s.pollutant)
            for s in found
        )
    )
    return Match(m.matched, m.false_positives - duplicates, m.false_negatives, duplicates)


@dataclass
class Counts:
    """Summed object counts of a group of runs, with the localisation errors of the matches."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    errors_m: list[float] = field(default_factory=list)
    duplicates: int = 0  # neither true nor false positives (match_places)

    def add(self, m: Match) -> None:
        self.tp += m.true_positives
        self.fp += m.false_positives
        self.fn += m.false_negatives
        self.duplicates += m.duplicates
        self.errors_m.extend(d for _, _, d in m.matched)

    @property
    def precision(self) -> float | None:
        found = self.tp + self.fp
        return self.tp / found if found else None

    @property
    def recall(self) -> float | None:
        real = self.tp + self.fn
        return self.tp / real if real else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def median_error_m(self) -> float | None:
        return statistics.median(self.errors_m) if self.errors_m else None


def first_detection(found_at: Iterable[tuple[int, bool]]) -> int | None:
    """The smallest pass count at which a source was matched, from (passes, matched) pairs."""
    hits = [n for n, ok in found_at if ok]
    return min(hits) if hits else None


def first_day_reaching(daily_passes: Sequence[Sequence[int]], n: int) -> int | None:
    """The first day (0-based) by whose end the median over sources of their cumulative passes
    reaches n; `daily_passes[s][d]` is source s's passes on day d (one row per source, all of
    one length). None when it never does (or there is no source)."""
    if not daily_passes:
        return None
    days = len(daily_passes[0])
    totals = [0] * len(daily_passes)
    for day in range(days):
        for s, row in enumerate(daily_passes):
            totals[s] += row[day]
        if statistics.median(totals) >= n:
            return day
    return None


def _band(value: float, edges: Sequence[float], labels: Sequence[str]) -> str:
    """labels[k] for edges[k-1] <= value < edges[k] (len(labels) = len(edges) + 1)."""
    for edge, label in zip(edges, labels, strict=False):
        if value < edge:
            return label
    return labels[-1]


def strength_band(sigma: float) -> str:
    """A source's amplitude at the source in sensor sigmas, as bands of the report."""
    return _band(sigma, (3.0, 5.0, 10.0, 30.0), ("<3", "3-5", "5-10", "10-30", ">=30"))


def signal_band(sigma: float | None) -> str:
    """What a source adds to the readings in its cell, in sensor sigmas, as bands."""
    if sigma is None:
        return "no readings"
    return _band(sigma, (0.5, 1.0, 2.0, 5.0), ("<0.5", "0.5-1", "1-2", "2-5", ">=5"))


def days_band(days: float) -> str:
    """The share of days a source works at all."""
    return _band(days, (0.5, 1.0), ("<50 %", "50-99 %", "100 %"))


def offstreet_band(metres: float) -> str:
    """How far a source's shape lies from the nearest driven street."""
    return _band(metres, (10.0, 40.0), ("<10 m", "10-40 m", ">=40 m"))


def pair_band(metres: float | None) -> str:
    """How far the nearest other source of the same pollutant is (None: there is none)."""
    if metres is None:
        return "none"
    return _band(metres, (250.0, 400.0), ("<250 m", "250-400 m", "none"))


def gap_m(a: TrueSource, b: TrueSource, step_m: float = 5.0) -> float:
    """The distance between two sources' shapes (0 when they touch), to within step_m."""
    return max(0.0, min(b.distance_m(lat, lon) for lat, lon in a.outline(step_m)) - a.radius_m)


def nearest_same_pollutant(sources: Sequence[TrueSource]) -> list[float | None]:
    """For each source, the gap to the nearest other source of its pollutant (None if none)."""
    out: list[float | None] = []
    for i, a in enumerate(sources):
        gaps = [
            gap_m(a, b)
            for j, b in enumerate(sources)
            if j != i and b.pollutant == a.pollutant and b.name != a.name
        ]
        out.append(min(gaps) if gaps else None)
    return out


def _minutes(windows: Iterable[tuple[int, int]]) -> set[int]:
    """The minutes of the day inside [start, end) windows (a window may wrap midnight)."""
    inside: set[int] = set()
    for start, end in windows:
        if start <= end:
            inside.update(range(start, end))
        else:
            inside.update(range(start, 1440))
            inside.update(range(end))
    return inside


def schedule_strata(
    windows_h: Sequence[tuple[float, float]], strata: Sequence[Stratum]
) -> frozenset[str]:
    """The time strata (those not covering the whole day) that overlap a schedule's daily
    windows in local hours: where a source with that schedule can be found in its time."""
    on = _minutes((round(a * 60), round(b * 60)) for a, b in windows_h)
    return frozenset(
        s.name for s in strata if len(span := _minutes(s.windows())) < 1440 and span & on
    )


def found_in_time(
    detections: Sequence[Detection], source: TrueSource, strata: frozenset[str]
) -> bool:
    """Whether a detection of the source's pollutant within the match radius of its shape was
    labelled episodic or came from one of `strata` (its time of day)."""
    reach = match_radius(source.pollutant)
    return any(
        d.pollutant == source.pollutant
        and (d.label == "episodic" or d.stratum in strata)
        and source.distance_m(d.lat, d.lon) <= reach
        for d in detections
    )


def threshold_level(pollutant: str, background: float, settings: AnalysisSettings) -> float:
    """Baseline (a)'s fixed threshold: the nominal background level plus the delta of the
    store's floors, max(delta_noise_factor x sensor noise, HOTSPOT_FLOORS)."""
    noise = settings.delta_noise_factor * settings.sensor_noise.get(pollutant, 0.0)
    return background + max(noise, HOTSPOT_FLOORS.get(pollutant, 0.0))


@dataclass(frozen=True, slots=True)
class CellMeans:
    """Per cell: the plain mean of its passes' values and how many passes it has."""

    cell: IntArray
    mean: FloatArray
    passes: IntArray


def cell_means(table: PassTable, pollutant: str) -> CellMeans:
    values = table.values.get(pollutant)
    if values is None or len(table) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return CellMeans(empty, np.zeros(0), empty)
    ok = ~np.isnan(values)
    cells, label = dense_labels(table.cell[ok])
    k = len(cells)
    n = group_count(label, k)
    mean = group_sum(label, values[ok], k) / np.maximum(n, 1)
    return CellMeans(cells.astype(np.int64), mean, n)


def _objects(pollutant: str, cells: IntArray, strength: FloatArray) -> list[Detection]:
    """Adjacent flagged cells merged into one object, placed at its strongest cell's centre."""
    out: list[Detection] = []
    for group in components(cells):
        best = max(group, key=lambda i: float(strength[i]))
        lat, lon = h3.cell_to_latlng(h3.int_to_str(int(cells[best])))
        out.append(Detection(pollutant, lat, lon, float(strength[best])))
    return out


def threshold_baseline(
    table: PassTable, pollutant: str, threshold: float, min_passes: int = 1
) -> list[Detection]:
    """(a) Cells whose mean pass value exceeds `threshold` (with at least min_passes passes)."""
    means = cell_means(table, pollutant)
    hot = (means.mean > threshold) & (means.passes >= min_passes)
    return _objects(pollutant, means.cell[hot], means.mean[hot])


def gi_baseline(
    table: PassTable, pollutant: str, settings: AnalysisSettings, alpha: float = 0.05
) -> list[Detection]:
    """(b) Gi* on the raw cell means (the settings' distance band): z > 0 and p < alpha."""
    from hotspots.analysis.spatial import spatial_tests

    means = cell_means(table, pollutant)
    if len(means.cell) == 0:
        return []
    order = np.argsort(means.cell)
    cells, mean = means.cell[order], means.mean[order]
    spatial = spatial_tests(cells, mean, settings)
    hot = (np.nan_to_num(spatial.gi_z, nan=0.0) > 0) & (
        np.nan_to_num(spatial.gi_p, nan=1.0) < alpha
    )
    return _objects(pollutant, cells[hot], mean[hot])
