"""Sites: a hotspot's place, with an identity that outlives the run that found it.

A hotspot's id (`{run}-{rank}`) names one run's list, and runs are pruned within hours; a link an
officer shares must keep working while the place stays a hotspot. A **site** is a pollutant and
time-of-day stratum at a place. Each new run's hotspot takes the site of the same pollutant and
stratum that shares most of its cells among the sites seen within `SiteSettings.reach` before
the run's window end ("the same place", as evidence.history reads it); one site goes to at most
one hotspot of a run, and a hotspot that shares no cell with any gets a new site. A site keeps
the cells of its newest hotspot, so a place that drifts a cell per run keeps its identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class SiteSettings:
    reach: timedelta = timedelta(days=14)  # a site unseen for longer is not matched again


@dataclass(frozen=True, slots=True)
class KnownSite:
    id: int
    pollutant: str
    stratum: str
    cells: frozenset[int]


@dataclass(frozen=True, slots=True)
class Placed:
    """What a new hotspot brings to the matching."""

    pollutant: str
    stratum: str
    cells: frozenset[int]


def match_sites(known: Sequence[KnownSite], new: Sequence[Placed]) -> list[int | None]:
    """For each new hotspot, the id of its site, or None for a new site.

    Pairs (hotspot, site) of one pollutant and stratum that share cells are taken greedily by
    shared cells, most first (then the newer site, then the earlier hotspot), each side once.
    """
    pairs: list[tuple[int, int, int]] = []  # (-shared, -site id, hotspot index)
    by_key: dict[tuple[str, str], list[KnownSite]] = {}
    for site in known:
        by_key.setdefault((site.pollutant, site.stratum), []).append(site)
    for i, spot in enumerate(new):
        for site in by_key.get((spot.pollutant, spot.stratum), ()):
            shared = len(spot.cells & site.cells)
            if shared:
                pairs.append((-shared, -site.id, i))
    out: list[int | None] = [None] * len(new)
    taken: set[int] = set()
    for _, minus_id, i in sorted(pairs):
        site_id = -minus_id
        if out[i] is None and site_id not in taken:
            out[i] = site_id
            taken.add(site_id)
    return out
