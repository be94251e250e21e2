"""Labels of a cell: persistent, candidate or episodic, each with the reasons that made it.

hotspots.md, "Default method" step 7, with delta = max(2 x sensor noise, floor):
- persistent: confirmed (>= confirmed_min_passes passes on >= candidate_min_days days), the
  magnitude test significant after FDR, persistence f >= persistent_min_share, and a spatial
  signal: a significant Gi* hot cluster or a significant high-low outlier (local Moran's I);
- candidate: candidate eligibility (>= candidate_min_passes passes, or stratum_min_passes in a
  time stratum, on >= candidate_min_days days) and the magnitude test or the share test significant after FDR, but not (yet)
  persistent;
- episodic: eligible, f < episodic_max_share, but at least episodic_min_spikes passes with an
  excess above episodic_factor x delta, significantly more (binomial test, FDR) than the area's
  own rate of such passes: a source that is on now and then (fumes, odor).
A cell that is none of these has no label and is not reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from hotspots.analysis.grouping import BoolArray, FloatArray
from hotspots.analysis.settings import AnalysisSettings

if TYPE_CHECKING:
    # Only a type here: the stored results read `Label` in the web process, which must not load
    # the statistics (scipy) that cellstats runs.
    from hotspots.analysis.cellstats import CellTable


class Label(StrEnum):
    PERSISTENT = "persistent"
    CANDIDATE = "candidate"
    EPISODIC = "episodic"


# Strength order, for a cluster that holds cells of several labels.
RANK: dict[Label, int] = {Label.PERSISTENT: 3, Label.CANDIDATE: 2, Label.EPISODIC: 1}


@dataclass(frozen=True, slots=True)
class Reason:
    """One condition a label rests on: a stable code and the figures behind it."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """FDR-adjusted test results per row of a CellTable (NaN where not tested)."""

    magnitude_q: FloatArray
    gi_z: FloatArray
    gi_q: FloatArray
    moran_i: FloatArray
    high_low_q: FloatArray
    episodic_q: FloatArray
    share_q: FloatArray | None = None  # the share test (cellstats), where it ran


@dataclass(frozen=True, slots=True)
class LabelMasks:
    persistent: BoolArray
    candidate: BoolArray
    episodic: BoolArray

    def label(self, row: int) -> Label | None:
        if self.persistent[row]:
            return Label.PERSISTENT
        if self.candidate[row]:
            return Label.CANDIDATE
        if self.episodic[row]:
            return Label.EPISODIC
        return None

    def any(self) -> BoolArray:
        return self.persistent | self.candidate | self.episodic


def min_passes(table: CellTable, settings: AnalysisSettings) -> int:
    """Passes a candidate needs: candidate_min_passes all day, stratum_min_passes in a time
    stratum (which gathers only the passes of its hours)."""
    all_day = table.stratum == settings.strata[0].name
    return settings.candidate_min_passes if all_day else settings.stratum_min_passes


def eligible(table: CellTable, settings: AnalysisSettings) -> BoolArray:
    return (table.passes >= min_passes(table, settings)) & (
        table.days >= settings.candidate_min_days
    )


def confirmed(table: CellTable, settings: AnalysisSettings) -> BoolArray:
    return eligible(table, settings) & (table.passes >= settings.confirmed_min_passes)


def _significant(q: FloatArray, level: float) -> BoolArray:
    return np.nan_to_num(q, nan=np.inf) <= level


def label_masks(table: CellTable, tests: Evidence, settings: AnalysisSettings) -> LabelMasks:
    q = settings.fdr_q
    magnitude = _significant(tests.magnitude_q, q)
    share = (
        _significant(tests.share_q, q)
        if tests.share_q is not None
        else np.zeros(len(table), dtype=bool)
    )
    spatial = _significant(tests.gi_q, q) | _significant(tests.high_low_q, q)
    persistent = (
        confirmed(table, settings)
        & magnitude
        & (table.persistence >= settings.persistent_min_share)
        & spatial
    )
    candidate = eligible(table, settings) & (magnitude | share) & ~persistent
    episodic = (
        eligible(table, settings)
        & ~persistent
        & ~candidate
        & (table.persistence < settings.episodic_max_share)
        & (table.spikes >= settings.episodic_min_spikes)
        & _significant(tests.episodic_q, q)
    )
    return LabelMasks(persistent=persistent, candidate=candidate, episodic=episodic)


def reasons(
    table: CellTable, tests: Evidence, row: int, label: Label, settings: AnalysisSettings
) -> tuple[Reason, ...]:
    """The conditions that made `label` for one cell, with their figures."""
    out = [
        Reason(
            "passes",
            f"{table.passes[row]} passes on {table.days[row]} days by {table.vehicles[row]} "
            f"vehicles (candidate needs {min_passes(table, settings)} on "
            f"{settings.candidate_min_days} days, confirmed {settings.confirmed_min_passes})",
        )
    ]
    excess = f"median excess {table.median_excess[row]:.3g} over the area reference " + (
        f"{table.reference:.3g}"
    )
    magnitude = _significant(tests.magnitude_q[row : row + 1], settings.fdr_q)[0]
    if label is Label.PERSISTENT or (label is Label.CANDIDATE and magnitude):
        out.append(
            Reason(
                "magnitude",
                f"{excess}; {settings.magnitude_test} p = {table.p_magnitude[row]:.2g} that it exceeds "
                f"{table.margin:.3g}, BH-adjusted "
                f"{tests.magnitude_q[row]:.2g} <= q = {settings.fdr_q}",
            )
        )
    share_q = float("nan") if tests.share_q is None else float(tests.share_q[row])
    if label is Label.CANDIDATE and share_q <= settings.fdr_q and table.p_share is not None:
        out.append(
            Reason(
                "share",
                f"passes above the area's {settings.share_quantile:.0%} quantile of excess + "
                f"margin ({table.share_threshold:.3g}): binomial p = {table.p_share[row]:.2g} "
                f"against {1 - settings.share_quantile:.0%}, BH-adjusted {share_q:.2g} <= "
                f"q = {settings.fdr_q}",
            )
        )
    if label is Label.PERSISTENT:
        out.append(
            Reason(
                "persistence",
                f"{table.persistence[row]:.0%} of passes above delta = {table.delta:.3g} "
                f"(>= {settings.persistent_min_share:.0%})",
            )
        )
        if _significant(tests.gi_q[row : row + 1], settings.fdr_q)[0]:
            out.append(
                Reason(
                    "gi_star",
                    f"Getis-Ord Gi* z = {tests.gi_z[row]:.2f}, BH-adjusted p = "
                    f"{tests.gi_q[row]:.2g}: part of a hot cluster",
                )
            )
        if _significant(tests.high_low_q[row : row + 1], settings.fdr_q)[0]:
            out.append(
                Reason(
                    "high_low_outlier",
                    f"local Moran's I = {tests.moran_i[row]:.2f}, high among low neighbours, "
                    f"BH-adjusted p = {tests.high_low_q[row]:.2g}",
                )
            )
    if label is Label.EPISODIC:
        out.append(
            Reason(
                "episodes",
                f"{table.spikes[row]} passes above {settings.episodic_factor:g} x delta = "
                f"{settings.episodic_factor * table.delta:.3g} while only "
                f"{table.persistence[row]:.0%} of passes exceed delta "
                f"(< {settings.episodic_max_share:.0%}); the area's rate of such passes is "
                f"{table.spike_rate:.1%}: binomial p = {table.p_episodic[row]:.2g}, "
                f"BH-adjusted {tests.episodic_q[row]:.2g} <= q = {settings.fdr_q}; {excess}",
            )
        )
    return tuple(out)
