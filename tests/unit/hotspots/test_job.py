"""The hotspot job's settings and the results filter refuse bad values, naming the field."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hotspots.job import JobError, JobSettings
from hotspots.results import HotspotFilter, ResultsError


def test_bad_settings_and_filters_are_refused_with_the_field_named() -> None:
    with pytest.raises(JobError, match="window"):
        JobSettings(window=timedelta(0))
    with pytest.raises(JobError, match="keep_runs"):
        JobSettings(keep_runs=0)
    with pytest.raises(ResultsError, match="label"):
        HotspotFilter(labels=["hot"])
    with pytest.raises(ResultsError, match="min_passes"):
        HotspotFilter(min_passes=0)
