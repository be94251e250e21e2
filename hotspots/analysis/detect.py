"""The hotspot pipeline: passes in, labelled hotspots out. Pure: no database, no clock.

For each pollutant with a floor in the settings and values in the passes:
1. trips per vehicle, and each pass's background from its trip (hotspots.analysis.background);
2. enhancement E per pass and the area reference (hotspots.analysis.enhancement);
3. for each time-of-day stratum: cell statistics (hotspots.analysis.cellstats), the magnitude test
   with Benjamini-Hochberg across eligible cells (hotspots.analysis.significance), Gi* and local
   Moran's I with BH across confirmed cells (hotspots.analysis.spatial), labels with reasons
   (hotspots.analysis.labels), with the time-of-day evidence of episodic cells (a cell on in one
   time stratum and ordinary outside it) drawn from all strata together;
4. adjacent labelled cells merged into hotspots (hotspots.analysis.clusters), each with its peak
   cell's level, bootstrap interval, time-of-day profile, an indicative standard band and the
   drives (vehicle and local day) that passed through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import h3
import numpy as np
from scipy.special import ndtr

from edge.units import CHANNELS
from hotspots.analysis.background import background, trips
from hotspots.analysis.cellstats import (
    CellTable,
    bootstrap_median_ci,
    cell_table,
    in_stratum,
    local_clock,
)
from hotspots.analysis.clusters import cluster, components
from hotspots.analysis.enhancement import enhancement, reference_level
from hotspots.analysis.grouping import (
    BoolArray,
    FloatArray,
    IntArray,
    dense_labels,
    group_median,
    group_sort,
)
from hotspots.analysis.labels import (
    RANK,
    Evidence,
    Label,
    LabelMasks,
    Reason,
    Window,
    label_masks,
    on_days,
    reasons,
)
from hotspots.analysis.labels import confirmed as confirmed_cells
from hotspots.analysis.labels import eligible as eligible_cells
from hotspots.analysis.lag import shift_channels
from hotspots.analysis.passes import AnalysisPass, PassTable
from hotspots.analysis.peaks import split
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.significance import MEDIAN_SE_FACTOR, benjamini_hochberg
from hotspots.analysis.spatial import spatial_tests
from hotspots.analysis.standards import IaqiBand, NoiseBand, iaqi_band, noise_band
from hotspots.analysis.windows import ScannedWindows, scan_windows

EPOCH_DAY = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class HotspotDrive:
    """One vehicle on one local day: the unit an officer can look up in the drive log."""

    vehicle: str
    day: date


@dataclass(frozen=True, slots=True)
class Hotspot:
    """One place where a pollutant stands above ordinary streets, with the evidence."""

    pollutant: str
    unit: str
    stratum: str  # time-of-day stratum the statistics are from
    label: Label
    reasons: tuple[Reason, ...]  # of the peak cell
    cells: tuple[str, ...]  # H3 indexes
    cell_labels: tuple[str, ...]  # label of each cell
    peak_cell: str
    lat: float  # excess-weighted centre of the cells, WGS-84
    lon: float
    geometry: dict[str, Any]  # GeoJSON Polygon / MultiPolygon, WGS-84
    level: float  # peak cell: median pass value (energy mean for noise)
    enhancement: float  # peak cell: median over passes of E (M)
    enhancement_interval: tuple[float, float]  # bootstrap interval of M
    excess: float  # peak cell: median of E - area reference
    persistence: float  # peak cell: share of passes with excess > delta
    delta: float
    passes: int  # peak cell
    days: int
    vehicles: int
    p_magnitude: float
    q_magnitude: float | None
    gi_z: float | None
    gi_q: float | None
    moran_i: float | None
    high_low_q: float | None
    first_seen: datetime  # over all cells of the hotspot
    last_seen: datetime
    profile: Mapping[str, float | None]  # M of the peak cell per stratum
    indicative: IaqiBand | NoiseBand | None
    drives: tuple[HotspotDrive, ...] = ()  # vehicle-days with a pass through the hotspot's cells
    # episodic hotspots: the time stratum it is on in (None: any time of day) and, for one on
    # some days only, (days on, days seen) of its peak cell
    episode_stratum: str | None = None
    episode_days: tuple[int, int] | None = None
    # ... or the window of local time, [start, end) minutes after midnight, found from the data
    # (hotspots.analysis.windows) where no time stratum fits
    episode_hours: tuple[int, int] | None = None


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class _Prepared:
    table: PassTable
    cells: IntArray  # distinct cells, sorted
    cell_label: IntArray  # position of each pass's cell in `cells`
    trip: IntArray
    day: IntArray
    minute: IntArray
    strata: tuple[BoolArray, ...]  # per stratum of the settings: which passes fall in it


def detect_places(
    passes: Sequence[AnalysisPass] | PassTable,
    settings: AnalysisSettings,
    pollutants: Iterable[str] | None = None,
) -> list[Hotspot]:
    """Every hotspot of every pollutant and stratum, each with its time-of-day profile, before
    `listed` keeps each place once and orders them: the analysis of one area
    (hotspots.analysis.areas) is merged with its neighbours' at this stage."""
    table = passes if isinstance(passes, PassTable) else PassTable.from_passes(passes)
    if len(table) == 0:
        return []
    if settings.pass_lag:
        table = lag_corrected(table, settings)
    mid = table.mid
    day, minute = local_clock(mid, settings.timezone)
    cells, cell_label = dense_labels(table.cell)
    prepared = _Prepared(
        table=table,
        cells=cells.astype(np.int64),
        cell_label=cell_label,
        trip=trips(table.vehicle, mid, settings.trip_gap_s),
        day=day,
        minute=minute,
        strata=tuple(in_stratum(minute, stratum) for stratum in settings.strata),
    )
    wanted = settings.pollutants() if pollutants is None else tuple(pollutants)
    found: list[Hotspot] = []
    for pollutant in wanted:
        if pollutant in table.values:
            found.extend(_pollutant(prepared, pollutant, settings))
    return found


def detect(
    passes: Sequence[AnalysisPass] | PassTable,
    settings: AnalysisSettings,
    pollutants: Iterable[str] | None = None,
) -> list[Hotspot]:
    """Hotspots of every pollutant and stratum: persistent first, then by excess."""
    return listed(detect_places(passes, settings, pollutants), settings)


def listed(places: Iterable[Hotspot], settings: AnalysisSettings) -> list[Hotspot]:
    """The officers' list of the places of `detect_places`: each place once (a later
    stratum's hotspot at an earlier one's place is dropped, see `_first_per_place`), persistent
    first, then by pollutant, stratum and excess."""
    order = {stratum.name: i for i, stratum in enumerate(settings.strata)}
    by_pollutant: dict[str, list[Hotspot]] = {}
    for spot in places:
        by_pollutant.setdefault(spot.pollutant, []).append(spot)
    found: list[Hotspot] = []
    for spots in by_pollutant.values():
        found.extend(
            _first_per_place(sorted(spots, key=lambda h: order.get(h.stratum, len(order))))
        )
    found.sort(key=lambda h: (-RANK[h.label], h.pollutant, h.stratum, -h.excess, h.peak_cell))
    return found


def lag_corrected(table: PassTable, settings: AnalysisSettings) -> PassTable:
    """The table with every pollutant's pass values moved back by its lag (settings.lags_s)."""
    lags = {p: lag for p, lag in settings.lags_s.items() if lag > 0}
    values = shift_channels(
        table.vehicle, table.mid, table.values, lags, settings.pass_lag_max_gap_s
    )
    return replace(table, values=values)


def pass_enhancements(
    table: PassTable, pollutant: str, settings: AnalysisSettings
) -> tuple[FloatArray, FloatArray]:
    """Background and enhancement of every pass (NaN without a value of the pollutant)."""
    mid = table.mid
    trip = trips(table.vehicle, mid, settings.trip_gap_s)
    values = table.values[pollutant]
    bg = background(trip, mid, values, settings)
    return bg, enhancement(values, bg)


def _pollutant(prep: _Prepared, pollutant: str, settings: AnalysisSettings) -> list[Hotspot]:
    table = prep.table
    mid = table.mid
    values = table.values[pollutant]
    bg = background(prep.trip, mid, values, settings)
    e = enhancement(values, bg)
    valid = ~np.isnan(e)
    energy = CHANNELS[pollutant].energy_mean if pollutant in CHANNELS else False
    tables: dict[str, CellTable] = {}
    built: list[tuple[CellTable, _StratumPasses]] = []
    results: list[Hotspot] = []
    # One sort of the pollutant's passes by cell, then enhancement; each stratum keeps its
    # passes in that order (a subset of a sorted layout is still sorted).
    usable = np.flatnonzero(valid)
    by_cell = usable[group_sort(prep.cell_label[usable], e[usable], len(prep.cells))]
    for stratum, in_window in zip(settings.strata, prep.strata, strict=True):
        mask = valid & in_window
        if not mask.any():
            continue
        rows = np.flatnonzero(mask)
        position = np.cumsum(mask) - 1  # of each pass among the stratum's passes
        order = position[by_cell[mask[by_cell]]]
        e_s = e[rows]
        value_s = values[rows]
        cell_s = table.cell[rows]
        vehicle_s = table.vehicle[rows]
        day_s = prep.day[rows]
        reference = reference_level(e_s, settings)
        cells = cell_table(
            pollutant,
            stratum.name,
            cell_s,
            vehicle_s,
            day_s,
            table.start[rows],
            table.end[rows],
            value_s,
            e_s,
            reference,
            energy,
            settings,
            index=(prep.cells, prep.cell_label[rows]),
            levels=False,
            order=order,
            readings=table.counts[pollutant][rows] if pollutant in table.counts else None,
        )
        tables[stratum.name] = cells
        stratum_passes = _StratumPasses(
            enhancement=e_s,
            value=value_s,
            cell=cell_s,
            vehicle=vehicle_s,
            day=day_s,
            vehicles=table.vehicles,
        )
        built.append((cells, stratum_passes))
    pooled = _pooled_q(built, settings) if settings.fdr_across_strata else None
    evidence = [
        _tests(cells, settings, None if pooled is None else pooled[i])
        for i, (cells, _) in enumerate(built)
    ]
    windows = _windows(
        prep, e - (built[0][0].reference if built else 0.0), built, evidence, settings
    )
    for (cells, stratum_passes), found, window in zip(built, evidence, windows, strict=True):
        tests = replace(found, window=window)
        masks = label_masks(cells, tests, settings)
        labelled = masks.any()
        if not labelled.any():
            continue
        strength = np.zeros(len(cells), dtype=np.int64)
        for row in np.flatnonzero(labelled):
            label = masks.label(int(row))
            strength[row] = RANK[label] if label is not None else 0
        _follow_intermittent_peaks(cells, masks, strength, settings)
        spots = _hotspots(cells, tests, strength, stratum_passes, settings, energy)
        results.extend(_with_episode(spot, cells, tests, settings) for spot in spots)
    names = [stratum.name for stratum in settings.strata]
    return [_with_profile(h, tables, names) for h in results]


def _first_per_place(spots: Sequence[Hotspot]) -> list[Hotspot]:
    """Each place once: a hotspot of a later stratum (settings order: all day first) whose peak
    cell is within one ring of an earlier stratum's hotspot is the same place, already listed;
    its stratum shows in that hotspot's time-of-day profile. Only the peak counts: a second
    source's flank may reach towards the first, its peak does not."""
    kept: list[Hotspot] = []
    covered: set[str] = set()
    for stratum in dict.fromkeys(s.stratum for s in spots):
        mine = [s for s in spots if s.stratum == stratum]
        fresh = [s for s in mine if s.peak_cell not in covered]
        for spot in fresh:
            for c in spot.cells:
                covered.update(h3.grid_disk(c, 1))
        kept.extend(fresh)
    return kept


_Q = tuple[FloatArray, FloatArray, FloatArray, FloatArray]  # magnitude, spikes, share, days q


def _pooled_q(built: Sequence[tuple[CellTable, Any]], settings: AnalysisSettings) -> list[_Q]:
    """Benjamini-Hochberg over families of cells: the all-day stratum is one family, the time
    strata (meals, lunch, dinner, night) together another; within each, the magnitude and share
    tests form one family (either makes a candidate) and the episode tests (spikes and days on)
    another.

    A place is reported when any time stratum finds it, and a cell is a candidate when either
    test rejects: corrected one stratum and one test at a time, the chance findings of four time
    strata and two tests add up (the null runs' false hotspots of hotspot-evaluation.md).
    """
    out: list[_Q | None] = [None] * len(built)
    all_day = settings.strata[0].name
    for family in (
        [i for i, (cells, _) in enumerate(built) if cells.stratum == all_day],
        [i for i, (cells, _) in enumerate(built) if cells.stratum != all_day],
    ):
        if family:
            for i, q in zip(
                family, _family_q([built[i][0] for i in family], settings), strict=True
            ):
                out[i] = q
    return [q for q in out if q is not None]


def _family_q(tables: Sequence[CellTable], settings: AnalysisSettings) -> list[_Q]:
    eligible = [eligible_cells(cells, settings) for cells in tables]

    def column(name: str) -> list[FloatArray]:
        out = []
        for cells, ok in zip(tables, eligible, strict=True):
            p = getattr(cells, name)
            out.append(p[ok] if p is not None else np.full(int(ok.sum()), np.nan))
        return out

    def spread(q: FloatArray) -> list[FloatArray]:
        out = []
        at = 0
        for cells, ok in zip(tables, eligible, strict=True):
            full = np.full(len(cells), np.nan)
            m = int(ok.sum())
            full[ok] = q[at : at + m]
            at += m
            out.append(full)
        return out

    magnitude = column("p_magnitude")
    share = column("p_share")
    m = sum(len(p) for p in magnitude)
    candidate_q = benjamini_hochberg(np.concatenate(magnitude + share))
    spikes = column("p_episodic")
    episode_q = benjamini_hochberg(np.concatenate(spikes + column("p_days")))
    return list(
        zip(
            spread(candidate_q[:m]),
            spread(episode_q[:m]),
            spread(candidate_q[m:]),
            spread(episode_q[m:]),
            strict=True,
        )
    )


def _tests(cells: CellTable, settings: AnalysisSettings, pooled: _Q | None = None) -> Evidence:
    n = len(cells)
    eligible = eligible_cells(cells, settings)
    if pooled is not None:
        magnitude_q, episodic_q, share_q, days_q = pooled
    else:
        magnitude_q = np.full(n, np.nan)
        magnitude_q[eligible] = benjamini_hochberg(cells.p_magnitude[eligible])
        episodic_q = np.full(n, np.nan)
        episodic_q[eligible] = benjamini_hochberg(cells.p_episodic[eligible])
        share_q = np.full(n, np.nan)
        if cells.p_share is not None:
            share_q[eligible] = benjamini_hochberg(cells.p_share[eligible])
        days_q = np.full(n, np.nan)
        if cells.p_days is not None:
            days_q[eligible] = benjamini_hochberg(cells.p_days[eligible])
    gi_z = np.full(n, np.nan)
    gi_q = np.full(n, np.nan)
    moran_i = np.full(n, np.nan)
    high_low_q = np.full(n, np.nan)
    confirmed = confirmed_cells(cells, settings)
    # The spatial tests only decide 'persistent': skip them when no cell could be persistent.
    could = (
        confirmed
        & (np.nan_to_num(magnitude_q, nan=np.inf) <= settings.fdr_q)
        & (cells.persistence >= settings.persistent_min_share)
    )
    if could.any():
        taking_part = cells.passes >= settings.spatial_min_passes
        spatial = spatial_tests(cells.cell[taking_part], cells.median_excess[taking_part], settings)
        gi_z[taking_part] = spatial.gi_z
        moran_i[taking_part] = spatial.moran_i
        gi_p = np.full(n, np.nan)
        hl_p = np.full(n, np.nan)
        gi_p[taking_part] = spatial.gi_p
        hl_p[taking_part] = spatial.high_low_p
        gi_q[confirmed] = benjamini_hochberg(gi_p[confirmed])
        high_low_q[confirmed] = benjamini_hochberg(hl_p[confirmed])
    return Evidence(
        magnitude_q=magnitude_q,
        gi_z=gi_z,
        gi_q=gi_q,
        moran_i=moran_i,
        high_low_q=high_low_q,
        episodic_q=episodic_q,
        share_q=share_q,
        days_q=days_q,
    )


def _follow_intermittent_peaks(
    cells: CellTable, masks: LabelMasks, strength: IntArray, settings: AnalysisSettings
) -> None:
    """Labelled cells around an intermittent peak are that source's flanks: episodic too.

    A flank sees a fraction of the source, too little for an 'on' day or a window of its own,
    but enough for the magnitude test over many passes; as a candidate it would outrank the
    source's own episodic cell in the hotspot they make together.
    """
    if masks.intermittent is None or not masks.intermittent.any():
        return
    labelled = np.flatnonzero(strength > 0)
    for group in components(cells.cell[labelled], settings.cluster_rings):
        rows = labelled[np.asarray(group, dtype=np.int64)]
        peak = rows[int(np.argmax(cells.median_excess[rows]))]
        if masks.intermittent[peak]:
            strength[rows] = RANK[Label.EPISODIC]


def _windows(
    prep: _Prepared,
    excess: FloatArray,
    built: Sequence[tuple[CellTable, Any]],
    evidence: Sequence[Evidence],
    settings: AnalysisSettings,
) -> list[Window | None]:
    """Time-of-day evidence per table: the cells significant (magnitude or share test) in a
    time stratum whose passes outside it are ordinary (median excess below episode_off_factor x
    delta, and significantly below the window's). Per cell, the window with the strongest
    contrast holds for every table.

    `excess` is each pass's enhancement less the all-day reference, so inside and outside are
    measured from the same level.
    """
    names = [stratum.name for stratum in settings.strata]
    if not built or built[0][0].stratum != names[0]:
        return [None] * len(built)
    all_day = built[0][0]
    k = len(prep.cells)
    valid = ~np.isnan(excess)
    deff = np.ones(k)
    if all_day.deff is not None:
        deff[np.searchsorted(prep.cells, all_day.cell)] = all_day.deff
    best = _Contrast.empty(k)
    for i, ((cells, _), tests) in enumerate(zip(built, evidence, strict=True)):
        if i == 0:
            continue
        significant = _significant_cells(cells, tests, settings)
        if not significant.any():
            continue
        index = names.index(cells.stratum)
        at = valid & np.isin(prep.cell_label, np.searchsorted(prep.cells, cells.cell[significant]))
        contrast = _Contrast.of(
            prep.cell_label, excess, at & prep.strata[index], at & ~prep.strata[index], k
        )
        se = (
            MEDIAN_SE_FACTOR
            * all_day.sigma
            * np.sqrt(
                deff / np.maximum(contrast.passes_inside, 1)
                + deff / np.maximum(contrast.passes_outside, 1)
            )
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.asarray(1.0 - ndtr((contrast.inside - contrast.outside) / se), dtype=np.float64)
        ok = (
            (contrast.passes_inside > 0)
            & (contrast.passes_outside >= settings.stratum_min_passes)
            & (contrast.outside < settings.episode_off_factor * all_day.delta)
            & (np.nan_to_num(p, nan=1.0) <= settings.fdr_q)
        )
        best = best.better(contrast.window(index, ok, p))
    # Cells no fixed stratum explains: a window from the data, over every cell found somewhere.
    found = np.unique(
        np.concatenate(
            [
                cells.cell[_significant_cells(cells, tests, settings)]
                for (cells, _), tests in zip(built, evidence, strict=True)
            ]
        )
    )
    found = found[best.stratum[np.searchsorted(prep.cells, found)] < 0]
    # A cell on some days and off on others is explained by its days: with few days, which
    # hours a day was driven would pass for a window.
    by_days = all_day.cell[on_days(all_day, evidence[0], settings)]
    found = found[~np.isin(found, by_days)]
    if len(found):
        scanned = scan_windows(
            prep.cell_label[valid],
            prep.minute[valid],
            prep.day[valid],
            excess[valid],
            np.searchsorted(prep.cells, found),
            deff,
            all_day.sigma,
            all_day.delta,
            settings,
            k,
        )
        best = best.or_scanned(scanned)
    # A cell's window is the one with the strongest contrast, whichever table lists it.
    return [best.rows(np.searchsorted(prep.cells, cells.cell)) for cells, _ in built]


def _significant_cells(cells: CellTable, tests: Evidence, settings: AnalysisSettings) -> BoolArray:
    """Eligible cells the magnitude or share test finds."""
    return eligible_cells(cells, settings) & (
        (np.nan_to_num(tests.magnitude_q, nan=np.inf) <= settings.fdr_q)
        | (np.nan_to_num(_or_nan(tests.share_q, len(cells)), nan=np.inf) <= settings.fdr_q)
    )


def _or_nan(values: FloatArray | None, n: int) -> FloatArray:
    return values if values is not None else np.full(n, np.nan)


@dataclass(frozen=True, slots=True)
class _Contrast:
    """Per cell (positions in _Prepared.cells): median excess inside and outside a window."""

    inside: FloatArray
    outside: FloatArray
    passes_inside: IntArray
    passes_outside: IntArray
    stratum: IntArray
    p: FloatArray
    start: IntArray | None = None  # a window from the data (windows.py): local minutes, -1 none
    end: IntArray | None = None

    @classmethod
    def empty(cls, k: int) -> _Contrast:
        zeros = np.zeros(k, dtype=np.int64)
        nan = np.full(k, np.nan)
        return cls(nan, nan, zeros, zeros, np.full(k, -1, dtype=np.int64), np.full(k, np.inf))

    def or_scanned(self, scanned: ScannedWindows) -> _Contrast:
        """A scanned window where no stratum's window holds (the strata come first: they are
        named and tried without a scan's correction)."""
        found = _Contrast(
            inside=scanned.inside,
            outside=scanned.outside,
            passes_inside=scanned.passes_inside,
            passes_outside=scanned.passes_outside,
            stratum=np.full(len(scanned.start), -1, dtype=np.int64),
            p=scanned.p,
            start=scanned.start,
            end=scanned.end,
        )
        return self._pick(found, (self.stratum < 0) & (scanned.start >= 0))

    @classmethod
    def of(
        cls, cell: IntArray, excess: FloatArray, inside: BoolArray, outside: BoolArray, k: int
    ) -> _Contrast:
        return cls(
            inside=group_median(cell[inside], excess[inside], k),
            outside=group_median(cell[outside], excess[outside], k),
            passes_inside=np.bincount(cell[inside], minlength=k).astype(np.int64),
            passes_outside=np.bincount(cell[outside], minlength=k).astype(np.int64),
            stratum=np.full(k, -1, dtype=np.int64),
            p=np.full(k, np.inf),
        )

    def window(self, index: int, ok: BoolArray, p: FloatArray) -> _Contrast:
        return replace(self, stratum=np.where(ok, index, -1), p=np.where(ok, p, np.inf))

    def better(self, other: _Contrast) -> _Contrast:
        """Per cell, whichever window has the smaller p-value."""
        return self._pick(other, other.p < self.p)

    def _pick(self, other: _Contrast, take: BoolArray) -> _Contrast:
        """Per cell, `other`'s window where `take`, else this one's (no scanned hours: -1)."""
        none = np.full(len(take), -1, dtype=np.int64)

        def pick(a: Any, b: Any) -> Any:
            if a is None and b is None:
                return None
            return np.where(take, none if b is None else b, none if a is None else a)

        return _Contrast(
            **{f.name: pick(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)}
        )

    def rows(self, at: IntArray) -> Window:
        return Window(
            stratum=self.stratum[at],
            inside=self.inside[at],
            outside=self.outside[at],
            passes_inside=self.passes_inside[at],
            passes_outside=self.passes_outside[at],
            p=self.p[at],
            start=None if self.start is None else self.start[at],
            end=None if self.end is None else self.end[at],
        )


def _with_episode(
    spot: Hotspot, cells: CellTable, tests: Evidence, settings: AnalysisSettings
) -> Hotspot:
    """An episodic hotspot with the window it applies to: the time stratum it is on in, and
    the days it was on of the days it was seen, from its peak cell."""
    if spot.label is not Label.EPISODIC:
        return spot
    row = int(np.searchsorted(cells.cell, h3.str_to_int(spot.peak_cell)))
    stratum = None if cells.stratum == settings.strata[0].name else cells.stratum
    days = None
    if cells.days_on is not None and on_days(cells, tests, settings)[row]:
        days = (int(cells.days_on[row]), int(cells.days[row]))
    hours = None
    if tests.window is not None and tests.window.stratum[row] >= 0:
        stratum = settings.strata[int(tests.window.stratum[row])].name
    elif (
        tests.window is not None
        and tests.window.start is not None
        and tests.window.end is not None
        and tests.window.start[row] >= 0
    ):
        stratum = None
        hours = (int(tests.window.start[row]), int(tests.window.end[row]))
    return replace(spot, episode_stratum=stratum, episode_days=days, episode_hours=hours)


@dataclass(frozen=True, slots=True)
class _StratumPasses:
    """The passes of one pollutant in one stratum, for the per-hotspot figures."""

    enhancement: FloatArray
    value: FloatArray
    cell: IntArray
    vehicle: IntArray
    day: IntArray  # local day number (days since 1970-01-01)
    vehicles: tuple[str, ...]

    def drives(self, cells: IntArray) -> tuple[HotspotDrive, ...]:
        """Each vehicle and local day with a pass through any of the cells."""
        at = np.isin(self.cell, cells)
        pairs = sorted(set(zip(self.vehicle[at].tolist(), self.day[at].tolist(), strict=True)))
        return tuple(
            HotspotDrive(self.vehicles[v], EPOCH_DAY + timedelta(days=int(d))) for v, d in pairs
        )


def _hotspots(
    cells: CellTable,
    tests: Evidence,
    strength: IntArray,
    passes: _StratumPasses,
    settings: AnalysisSettings,
    energy: bool,
) -> list[Hotspot]:
    labelled = np.flatnonzero(strength > 0)
    names = {v: k for k, v in RANK.items()}
    rng = np.random.default_rng(settings.seed)
    out: list[Hotspot] = []
    groups = [
        [int(labelled[i]) for i in group]
        for group in components(cells.cell[labelled], settings.cluster_rings)
    ]
    # One hotspot per source: a cluster holding two peaks with a deep dip between is split.
    for rows in split(cells, groups, passes.cell, passes.enhancement, settings.cluster_rings):
        shape = cluster(cells.cell, rows, strength, cells.median_excess)
        peak = shape.peak_row
        at_peak = passes.cell == cells.cell[peak]
        interval = bootstrap_median_ci(
            passes.enhancement[at_peak],
            settings.bootstrap_resamples,
            settings.confidence,
            rng,
        )
        label = names[int(strength[peak])]
        level = (
            float(cells.level_energy[peak])
            if energy and cells.level_energy is not None
            else float(np.median(passes.value[at_peak]))
        )
        out.append(
            Hotspot(
                pollutant=cells.pollutant,
                unit=CHANNELS[cells.pollutant].unit if cells.pollutant in CHANNELS else "",
                stratum=cells.stratum,
                label=label,
                reasons=reasons(cells, tests, peak, label, settings),
                cells=tuple(h3.int_to_str(int(cells.cell[r])) for r in rows),
                cell_labels=tuple(names[int(strength[r])].value for r in rows),
                peak_cell=h3.int_to_str(int(cells.cell[peak])),
                lat=shape.lat,
                lon=shape.lon,
                geometry=shape.geometry,
                level=level,
                enhancement=float(cells.median_enhancement[peak]),
                enhancement_interval=interval,
                excess=float(cells.median_excess[peak]),
                persistence=float(cells.persistence[peak]),
                delta=cells.delta,
                passes=int(cells.passes[peak]),
                days=int(cells.days[peak]),
                vehicles=int(cells.vehicles[peak]),
                p_magnitude=float(cells.p_magnitude[peak]),
                q_magnitude=_finite(tests.magnitude_q[peak]),
                gi_z=_finite(tests.gi_z[peak]),
                gi_q=_finite(tests.gi_q[peak]),
                moran_i=_finite(tests.moran_i[peak]),
                high_low_q=_finite(tests.high_low_q[peak]),
                first_seen=datetime.fromtimestamp(float(cells.first[rows].min()), UTC),
                last_seen=datetime.fromtimestamp(float(cells.last[rows].max()), UTC),
                profile={},
                drives=passes.drives(cells.cell[np.asarray(rows, dtype=np.int64)]),
                indicative=_indicative(cells.pollutant, level, cells.stratum),
            )
        )
    return out


def _indicative(pollutant: str, level: float, stratum: str) -> IaqiBand | NoiseBand | None:
    if not np.isfinite(level):
        return None
    if pollutant == "noise":
        return noise_band(level, "2", "night" if stratum == "night" else "day")
    return iaqi_band(pollutant, level)


def _with_profile(spot: Hotspot, tables: Mapping[str, CellTable], names: Sequence[str]) -> Hotspot:
    """Add the peak cell's M in every stratum (None where it had no passes)."""
    peak = h3.str_to_int(spot.peak_cell)
    profile: dict[str, float | None] = dict.fromkeys(names)
    for name, cells in tables.items():
        row = int(np.searchsorted(cells.cell, peak))
        found = row < len(cells) and int(cells.cell[row]) == peak
        profile[name] = _finite(cells.median_enhancement[row]) if found else None
    return replace(spot, profile=profile)
