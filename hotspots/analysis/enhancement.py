"""Enhancement of a pass over its background, and the area's reference enhancement.

E = pass value - background at the pass's midpoint (in dB for noise: a level difference).
Because the background is a low percentile, an ordinary street's passes have E > 0 too; a
hotspot is a place that stands above ordinary streets. With `reference = "area_median"` (the
default) the magnitude test and persistence use the excess X = E - median of all E of the
pollutant (in the stratum): under a uniform field X is centred on zero whatever the background
percentile. `reference = "zero"` tests E itself, as hotspots.md writes it.
"""

from __future__ import annotations

import numpy as np

from hotspots.analysis.grouping import FloatArray
from hotspots.analysis.settings import AnalysisSettings


def enhancement(values: FloatArray, background: FloatArray) -> FloatArray:
    """E per pass; NaN where either is missing."""
    return values - background


def reference_level(enhancements: FloatArray, settings: AnalysisSettings) -> float:
    """What enhancements are compared with: the area median of E, or zero."""
    if settings.reference == "zero":
        return 0.0
    finite = enhancements[~np.isnan(enhancements)]
    return float(np.median(finite)) if len(finite) else 0.0
