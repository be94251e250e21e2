"""Before/after: did a hotspot's level change after a treatment date?

The call boundary is `BeforeAfterTest`: given a connection and a `BeforeAfterRequest`, return a
`BeforeAfterResult`. The API calls whatever test the application was built with
(`create_app(..., before_after=...)`); the default is `stored_before_after`.

`stored_before_after` reads the passes the ingest stored (`pass`, at the H3 resolution stored in
`meta`) in a window on each side of the treatment time, with the hotspot job's reader
(hotspots.pass_reader.read_passes), and runs the analysis package's test
(hotspots.analysis.beforeafter.before_after_cells): per-pass enhancements over each trip's own
background, effect = median after - median before, a bootstrap interval of the effect, a
two-sided Mann-Whitney p-value, and the passes on each side. Backgrounds come from each pass's
whole trip, so a regional episode on one side of the date does not pass for a local change.
With fewer than `min_passes` passes on either side it answers `insufficient-data`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import h3
import psycopg

from hotspots.analysis.beforeafter import BeforeAfterError, before_after_cells
from hotspots.analysis.settings import AnalysisSettings
from hotspots.pass_reader import read_passes
from store.analysis_meta import read_analysis
from store.channels import channel_spec

Conn = psycopg.Connection[Any]

METHOD = (
    "median per-pass enhancement (over each trip's background) after vs before; bootstrap "
    "interval of the difference; two-sided Mann-Whitney U (hotspots.analysis.beforeafter)"
)
NOTE = (
    "Indicative: compares passes of patrol vehicles, not fixed-site measurements. Passes are "
    "taken as independent; few passes on a side widen the interval."
)


@dataclass(frozen=True, slots=True)
class BeforeAfterRequest:
    cell: str  # H3 index of the hotspot's (peak) cell
    pollutant: str
    treated_at: datetime
    window: timedelta = timedelta(days=30)  # on each side
    min_passes: int = 3  # on each side, to conclude
    alpha: float = 0.05
    cells: tuple[str, ...] = ()  # all the hotspot's cells, when known (else `cell` alone)


@dataclass(frozen=True, slots=True)
class BeforeAfterResult:
    method: str
    pollutant: str
    unit: str
    cell: str
    cells: list[str]  # at the analysis resolution
    treated_at: datetime
    window_start: datetime
    window_end: datetime
    passes_before: int
    passes_after: int
    median_before: float | None  # median enhancement
    median_after: float | None
    change: float | None  # the effect: median after - median before
    interval_low: float | None  # bootstrap interval of the change
    interval_high: float | None
    confidence: float
    p_value: float | None  # two-sided
    alpha: float
    verdict: str  # decreased, increased, no-significant-change, insufficient-data
    note: str
    provisional: bool = False

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("treated_at", "window_start", "window_end"):
            out[key] = out[key].isoformat()
        return out


class BeforeAfterTest(Protocol):
    def __call__(self, conn: Conn, request: BeforeAfterRequest) -> BeforeAfterResult: ...


def cells_at(cells: tuple[str, ...], resolution: int) -> list[str]:
    """The cells at `resolution`: children of coarser ones, parents of finer ones."""
    out: list[str] = []
    for cell in cells:
        own = h3.get_resolution(cell)
        if own == resolution:
            out.append(cell)
        elif own < resolution:
            out.extend(h3.cell_to_children(cell, resolution))
        else:
            out.append(h3.cell_to_parent(cell, resolution))
    return sorted(set(out))


def verdict_of(change: float, low: float, high: float, p_value: float, alpha: float) -> str:
    if p_value < alpha and not low <= 0.0 <= high:
        return "decreased" if change < 0 else "increased"
    return "no-significant-change"


def stored_before_after(conn: Conn, request: BeforeAfterRequest) -> BeforeAfterResult:
    """The `BeforeAfterTest` over the stored passes (see the module docstring)."""
    spec = channel_spec(request.pollutant)
    stored = read_analysis(conn)
    settings = AnalysisSettings(before_after_min_passes=request.min_passes)
    start = request.treated_at - request.window
    end = request.treated_at + request.window
    cells = cells_at(request.cells or (request.cell,), stored.resolution)
    table = read_passes(conn, stored.resolution, start, end, (spec.name,))
    base: dict[str, Any] = {
        "method": METHOD,
        "pollutant": spec.name,
        "unit": spec.unit,
        "cell": request.cell,
        "cells": cells,
        "treated_at": request.treated_at,
        "window_start": start,
        "window_end": end,
        "confidence": settings.confidence,
        "alpha": request.alpha,
        "note": NOTE,
    }
    try:
        result = before_after_cells(table, spec.name, cells, request.treated_at, settings)
    except BeforeAfterError as exc:
        return BeforeAfterResult(
            **base,
            passes_before=exc.before,
            passes_after=exc.after,
            median_before=None,
            median_after=None,
            change=None,
            interval_low=None,
            interval_high=None,
            p_value=None,
            verdict="insufficient-data",
        )
    low, high = result.interval
    return BeforeAfterResult(
        **base,
        passes_before=result.passes_before,
        passes_after=result.passes_after,
        median_before=result.median_before,
        median_after=result.median_after,
        change=result.effect,
        interval_low=low,
        interval_high=high,
        p_value=result.p_value,
        verdict=verdict_of(result.effect, low, high, result.p_value, request.alpha),
    )
