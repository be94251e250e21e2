"""Before/after: did a cell's level change after a treatment date?

The call boundary is `BeforeAfterTest`: given a connection and a `BeforeAfterRequest`, return a
`BeforeAfterResult`. The API calls whatever test the application was built with
(`create_app(..., before_after=...)`), so the analysis package's test replaces this one without
touching the routes or the stored result's shape.

PROVISIONAL method, until the analysis package lands: the cell's passes in a window on each side
of the treatment date (a pass is one vehicle's contiguous run of qualifying readings in the cell;
a gap over `pass_gap_s` ends it), each pass averaged (energy mean for noise); the change is the
median pass mean after minus before; the p-value is a two-sided permutation test of that
difference of medians (exact when the relabellings are few, else `permutations` random ones
with a fixed seed, so the same data always give the same answer). It does NOT remove background
drift: a regional pollution episode on one side of the date moves the result. It says so in its
result, and it refuses to conclude with fewer than `min_passes` passes on either side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from itertools import combinations
from typing import Any, Protocol

import h3
import numpy as np
import psycopg
from psycopg import sql

from edge.units import ChannelSpec
from ingest.queries import HOTSPOT_EXCLUDED_FLAGS, TimeRange, channel_spec

Conn = psycopg.Connection[Any]

METHOD = (
    "provisional: median of pass means after vs before, permutation test (no background correction)"
)
NOTE = (
    "Provisional test until the hotspot analysis provides its own: raw pass means are compared, "
    "so a regional pollution episode on one side of the treatment date can move the result."
)


@dataclass(frozen=True, slots=True)
class BeforeAfterRequest:
    cell: str  # H3 index at the stored resolution
    pollutant: str
    treated_at: datetime
    window: timedelta = timedelta(days=30)  # on each side
    pass_gap_s: float = 120.0
    min_passes: int = 3  # on each side, to conclude
    alpha: float = 0.05


@dataclass(frozen=True, slots=True)
class Comparison:
    n_before: int
    n_after: int
    median_before: float
    median_after: float
    change: float  # after - before
    p_value: float  # two-sided
    permutations: int  # relabellings tried (all of them when exact)
    exact: bool


@dataclass(frozen=True, slots=True)
class BeforeAfterResult:
    method: str
    provisional: bool
    pollutant: str
    unit: str
    cell: str
    treated_at: datetime
    window_start: datetime
    window_end: datetime
    passes_before: int
    passes_after: int
    median_before: float | None
    median_after: float | None
    change: float | None
    relative_change: float | None  # change / median_before
    p_value: float | None
    permutations: int
    alpha: float
    verdict: str  # decreased, increased, no-significant-change, insufficient-data
    note: str

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("treated_at", "window_start", "window_end"):
            out[key] = out[key].isoformat()
        return out


class BeforeAfterTest(Protocol):
    def __call__(self, conn: Conn, request: BeforeAfterRequest) -> BeforeAfterResult: ...


def compare(
    before: Sequence[float], after: Sequence[float], permutations: int = 9999, seed: int = 0
) -> Comparison:
    """Difference of medians and its two-sided permutation p-value. Needs a value on each side."""
    if not before or not after:
        raise ValueError("each side needs at least one value")
    values = np.asarray([*before, *after], dtype=float)
    n_before = len(before)
    observed = float(np.median(values[n_before:]) - np.median(values[:n_before]))
    tolerance = 1e-9 * max(1.0, abs(observed))
    total = math.comb(len(values), n_before)
    if total <= permutations:
        count = 0
        indices = range(len(values))
        for chosen in combinations(indices, n_before):
            mask = np.zeros(len(values), dtype=bool)
            mask[list(chosen)] = True
            diff = float(np.median(values[~mask]) - np.median(values[mask]))
            count += abs(diff) >= abs(observed) - tolerance
        p_value = count / total
        tried, exact = total, True
    else:
        rng = np.random.default_rng(seed)
        shuffled = rng.permuted(np.tile(values, (permutations, 1)), axis=1)
        diffs = np.median(shuffled[:, n_before:], axis=1) - np.median(
            shuffled[:, :n_before], axis=1
        )
        count = int(np.sum(np.abs(diffs) >= abs(observed) - tolerance))
        p_value = (count + 1) / (permutations + 1)
        tried, exact = permutations, False
    return Comparison(
        n_before=n_before,
        n_after=len(after),
        median_before=float(np.median(values[:n_before])),
        median_after=float(np.median(values[n_before:])),
        change=observed,
        p_value=min(1.0, p_value),
        permutations=tried,
        exact=exact,
    )


@dataclass(frozen=True, slots=True)
class Pass:
    vehicle: str
    start: datetime
    end: datetime
    mean: float

    @property
    def midpoint(self) -> datetime:
        return self.start + (self.end - self.start) / 2


def _mean(values: list[float], energy: bool) -> float:
    if energy:
        return 10.0 * math.log10(sum(10.0 ** (v / 10.0) for v in values) / len(values))
    return sum(values) / len(values)


def passes(
    rows: Sequence[tuple[str, datetime, float]], pass_gap_s: float, energy: bool = False
) -> list[Pass]:
    """Passes from (vehicle, time, value) rows of one cell, sorted by vehicle and time."""
    out: list[Pass] = []
    gap = timedelta(seconds=pass_gap_s)
    current: list[tuple[str, datetime, float]] = []

    def close() -> None:
        if current:
            values = [v for _, _, v in current]
            out.append(Pass(current[0][0], current[0][1], current[-1][1], _mean(values, energy)))

    for row in rows:
        if current and (row[0] != current[-1][0] or row[1] - current[-1][1] > gap):
            close()
            current = []
        current.append(row)
    close()
    return out


_CELL_READINGS = """
SELECT vehicle, time, {value} AS value FROM reading
WHERE cell = %(cell)s AND {time}
  AND fix_valid AND {value} IS NOT NULL
  AND NOT (channel_flags ? %(channel)s)
  AND NOT (flags && %(excluded_flags)s::text[])
ORDER BY vehicle, time, seq
"""


def cell_passes(
    conn: Conn, spec: ChannelSpec, cell: str, time: TimeRange, pass_gap_s: float
) -> list[Pass]:
    """The cell's passes in the time range, from readings that may count (as for hotspots)."""
    where = time.condition("time")
    query = sql.SQL(_CELL_READINGS).format(value=sql.Identifier(spec.name), time=where.sql)
    params = {
        **where.params,
        "cell": h3.str_to_int(cell),
        "channel": spec.name,
        "excluded_flags": list(HOTSPOT_EXCLUDED_FLAGS),
    }
    rows = conn.execute(query, params).fetchall()
    return passes(rows, pass_gap_s, spec.energy_mean)


def provisional_before_after(conn: Conn, request: BeforeAfterRequest) -> BeforeAfterResult:
    """The provisional `BeforeAfterTest` (see the module docstring)."""
    spec = channel_spec(request.pollutant)
    window = TimeRange(request.treated_at - request.window, request.treated_at + request.window)
    found = cell_passes(conn, spec, request.cell, window, request.pass_gap_s)
    before = [p.mean for p in found if p.midpoint < request.treated_at]
    after = [p.mean for p in found if p.midpoint >= request.treated_at]
    base: dict[str, Any] = {
        "method": METHOD,
        "provisional": True,
        "pollutant": spec.name,
        "unit": spec.unit,
        "cell": request.cell,
        "treated_at": request.treated_at,
        "window_start": request.treated_at - request.window,
        "window_end": request.treated_at + request.window,
        "passes_before": len(before),
        "passes_after": len(after),
        "alpha": request.alpha,
        "note": NOTE,
    }
    if len(before) < request.min_passes or len(after) < request.min_passes:
        return BeforeAfterResult(
            **base,
            median_before=float(np.median(before)) if before else None,
            median_after=float(np.median(after)) if after else None,
            change=None,
            relative_change=None,
            p_value=None,
            permutations=0,
            verdict="insufficient-data",
        )
    result = compare(before, after)
    verdict = "no-significant-change"
    if result.p_value < request.alpha:
        verdict = "decreased" if result.change < 0 else "increased"
    relative = result.change / result.median_before if result.median_before else None
    return BeforeAfterResult(
        **base,
        median_before=result.median_before,
        median_after=result.median_after,
        change=result.change,
        relative_change=relative,
        p_value=result.p_value,
        permutations=result.permutations,
        verdict=verdict,
    )
