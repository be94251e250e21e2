"""Scoring hotspot detection against known sources: matching, metrics and the naive baselines.

Pure functions of detections, true sources and passes (no simulator, no database): the one
definition of every figure the evaluation harness (bench/hotspot_eval.py) reports. The rules follow docs/hotspots.md, "Scoring detection against known truth":

- objects, not cells: the detector's hotspots (all strata) and each baseline's clusters of
  adjacent flagged cells are first merged per pollutant, so one place found in the all-day and
  the lunch stratum counts once (`merge`);
- a detection matches a true source of its pollutant within 75 m (100 m for the slow
  electrochemical and NDIR channels, whose lag smears a source further); matching is greedy
  one-to-one by distance (`match`);
- precision, recall and F1 are computed from the summed counts of a group of runs
  (`Counts.add`), not averaged per run, so runs with few objects do not dominate;
- localisation error is the distance from a matched detection's centre to its source.

The two naive baselines run on the very same passes as the detector:
(a) `threshold_baseline`: a cell whose mean of pass values lies above a fixed threshold;
(b) `gi_baseline`: Getis-Ord Gi* on the raw cell means, one-sided p < alpha, no FDR, no
    eligibility rule.

The spatial statistics (scipy, esda) are imported by `gi_baseline` when it runs, not with this
module: the matching and the counts need neither.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import h3
import numpy as np

from edge.quality import distance_m
from hotspots.analysis.clusters import components
from hotspots.analysis.grouping import FloatArray, IntArray, dense_labels, group_count, group_sum
from hotspots.analysis.passes import PassTable
from hotspots.analysis.settings import AnalysisSettings

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
    "distance_m",
    "first_detection",
    "gi_baseline",
    "match",
    "match_radius",
    "merge",
    "threshold_baseline",
]

MATCH_RADIUS_M = 75.0
SLOW_MATCH_RADIUS_M = 100.0
# Electrochemical gas cells and NDIR CO2 respond over 30-120 s (hotspots.md, "Sensor lag").
SLOW_CHANNELS = frozenset({"no2", "o3", "co", "so2", "hcho", "co2"})


def match_radius(pollutant: str) -> float:
    return SLOW_MATCH_RADIUS_M if pollutant in SLOW_CHANNELS else MATCH_RADIUS_M


@dataclass(frozen=True, slots=True)
class TrueSource:
    """One pollutant of one simulated source: the object a detector should find."""

    name: str
    kind: str  # dust, traffic, cooking ...
    pollutant: str
    lat: float
    lon: float
    sigma: float  # amplitude at the source in units of the channel's sensor noise


@dataclass(frozen=True, slots=True)
class Detection:
    """One reported place: a hotspot of the detector or a cluster of a baseline."""

    pollutant: str
    lat: float
    lon: float
    strength: float = 0.0  # what ranks detections when merging (excess, cell mean ...)


@dataclass(frozen=True, slots=True)
class Match:
    matched: tuple[tuple[int, int, float], ...]  # (detection, source, distance m)
    false_positives: int
    false_negatives: int

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
    """Greedy one-to-one matching by distance, same pollutant, within the pollutant's radius."""
    pairs = sorted(
        (distance_m(d.lat, d.lon, s.lat, s.lon), i, j)
        for i, d in enumerate(detections)
        for j, s in enumerate(sources)
        if d.pollutant == s.pollutant
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


@dataclass
class Counts:
    """Summed object counts of a group of runs, with the localisation errors of the matches."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    errors_m: list[float] = field(default_factory=list)

    def add(self, m: Match) -> None:
        self.tp += m.true_positives
        self.fp += m.false_positives
        self.fn += m.false_negatives
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
