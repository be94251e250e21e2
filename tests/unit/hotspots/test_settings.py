"""`[hotspots]` in the service's TOML file (hotspots.settings)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from edge.errors import SettingsError
from hotspots.settings import hotspot_settings, load_hotspot_settings
from ingest.settings import load_ingest_settings


def test_defaults_without_a_section() -> None:
    job = hotspot_settings({}, {})
    assert job.window == timedelta(days=30)
    assert not job.areas.enabled  # opt-in: per-area FDR raises a quiet city's false hotspots
    assert job.areas.workers == 1
    assert job.areas.resolution == 7


def test_the_file_sets_and_the_command_line_overrides(tmp_path: Path) -> None:
    path = tmp_path / "envpatrol.toml"
    path.write_text(
        '[database]\nurl = "postgresql:///envpatrol"\n'
        "[hotspots]\nwindow_days = 365\nworkers = 2\narea_resolution = 6\nhalo_m = 300\n"
        'settle_min = 30\nfull_every = 12\nareas = true\ntimezone = "UTC"\n'
    )
    job = load_hotspot_settings(str(path), {"workers": 4, "window_days": None})
    assert job.window == timedelta(days=365)
    assert job.areas.workers == 4
    assert job.areas.resolution == 6
    assert job.areas.halo_m == 300.0
    assert job.areas.settle == timedelta(minutes=30)
    assert job.areas.full_every == 12
    assert job.analysis.timezone == "UTC"
    # the ingest reads the same file and leaves the section to the analysis
    assert load_ingest_settings(str(path), {}).database_url == "postgresql:///envpatrol"


@pytest.mark.parametrize(
    ("section", "subject"),
    [
        ({"wrokers": 2}, "hotspots.wrokers"),
        ({"workers": 0}, "hotspots.workers"),
        ({"workers": True}, "hotspots.workers"),
        ({"workers": "2"}, "hotspots.workers"),
        ({"area_resolution": 16}, "hotspots.area_resolution"),
        ({"halo_m": -1}, "hotspots.halo_m"),
        ({"full_every": 0}, "hotspots.full_every"),
        ({"window_days": 0}, "window"),
    ],
)
def test_bad_settings_name_their_key(section: dict[str, object], subject: str) -> None:
    with pytest.raises(SettingsError) as caught:
        hotspot_settings(section, {})
    assert caught.value.subject == subject
