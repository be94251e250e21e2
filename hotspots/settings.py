"""`[hotspots]` in the service's TOML file: the analysis job's settings.

The file is the one `envpatrol ingest` and `migrate` read (its `[database]` names the store);
`envpatrol analyse` reads this section from it, and its command-line options override it.

    [hotspots]
    window_days = 30        # passes analysed: those starting in the last window
    interval_min = 60       # between periodic runs
    keep_runs = 24
    timezone = "Asia/Shanghai"
    areas = false           # analyse area by area (docs/hotspots.md, "Areas")
    area_resolution = 7     # H3 parents where no management grid covers a cell
    halo_m = 400            # neighbours an area is analysed with
    workers = 2             # analysis processes
    settle_min = 10         # passes older than this at a run are taken as final
    full_every = 24         # every n-th run re-analyses every area
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from edge.config import load_toml
from edge.errors import SettingsError
from hotspots.analysis.areas import AreaError
from hotspots.analysis.settings import AnalysisSettings
from hotspots.area_runs import AreaSettings
from hotspots.job import JobError, JobSettings

__all__ = ["hotspot_settings", "load_hotspot_settings"]

_KEYS: dict[str, type | tuple[type, ...]] = {
    "window_days": (int, float),
    "interval_min": (int, float),
    "keep_runs": int,
    "timezone": str,
    "areas": bool,
    "area_resolution": int,
    "halo_m": (int, float),
    "workers": int,
    "settle_min": (int, float),
    "full_every": int,
}


def hotspot_settings(section: Mapping[str, Any], overrides: Mapping[str, Any]) -> JobSettings:
    """The job's settings from a `[hotspots]` section and overrides (None: not given)."""
    unknown = sorted(set(section) - set(_KEYS))
    if unknown:
        raise SettingsError(f"hotspots.{unknown[0]}", "unknown setting")
    for key, value in section.items():
        kinds = _KEYS[key]
        # bool is an int in Python: a count or a distance of `true` is a mistake, not 1
        if isinstance(value, bool) and kinds is not bool:
            raise SettingsError(f"hotspots.{key}", f"must be a number, got {value!r}")
        if not isinstance(value, kinds):
            raise SettingsError(f"hotspots.{key}", f"wrong type: {value!r}")
    given = {**section, **{k: v for k, v in overrides.items() if v is not None}}
    areas = AreaSettings()
    try:
        areas = AreaSettings(
            enabled=bool(given.get("areas", areas.enabled)),
            resolution=int(given.get("area_resolution", areas.resolution)),
            halo_m=float(given.get("halo_m", areas.halo_m)),
            workers=int(given.get("workers", areas.workers)),
            settle=timedelta(minutes=float(given.get("settle_min", 10.0))),
            full_every=int(given.get("full_every", areas.full_every)),
        )
        return JobSettings(
            window=timedelta(days=float(given.get("window_days", 30.0))),
            interval=timedelta(minutes=float(given.get("interval_min", 60.0))),
            keep_runs=int(given.get("keep_runs", 24)),
            analysis=dataclasses.replace(
                AnalysisSettings(), timezone=str(given.get("timezone", AnalysisSettings().timezone))
            ),
            areas=areas,
        )
    except (AreaError, JobError) as exc:
        raise SettingsError(exc.subject, exc.problem) from exc


def load_hotspot_settings(path: str | None, overrides: Mapping[str, Any]) -> JobSettings:
    """`[hotspots]` of the TOML file at `path` (none: defaults), with the overrides."""
    section = load_toml(path).get("hotspots", {})
    if not isinstance(section, dict):
        raise SettingsError("hotspots", "must be a table")
    return hotspot_settings(section, overrides)
