"""Register resolution of a box's channels, and what it does to the hotspot statistics.

A box reports integers scaled to a unit (edge.profile): PM2.5 in whole ug/m3, SO2 in whole ppb,
which is 2.62 ug/m3 once converted to the canonical unit (edge.units). Values on such a grid tie
often: the robust spread of many passes (MAD) can collapse to zero, and a cell one step above
the rest would then look certain. The method therefore knows each channel's step (its quantum),
the coarsest over the boxes of the fleet, and
- adds the rounding error, a uniform error of variance q^2 / 12, to the sensor noise;
- never counts less than one step as 'above';
- tests a cell's median within a few steps of the area's against the area's own (lattice)
  distribution of excesses as well (hotspots.analysis.significance.median_lattice_greater).

Float registers (f32) have no grid worth counting: their step is 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from edge.profile import BoxProfile, ChannelMap
from edge.units import converter

__all__ = ["effective_noise", "quanta_of_profiles", "register_step"]


def register_step(channel: ChannelMap) -> float:
    """The smallest change of a channel's value the register can show, in canonical units."""
    if channel.type == "f32":
        return 0.0
    to_canonical = converter(channel.channel, channel.unit)
    # Every conversion is linear (a factor), so one register step converts like any difference.
    return abs(to_canonical(channel.scale) - to_canonical(0.0))


def quanta_of_profiles(profiles: Iterable[BoxProfile]) -> dict[str, float]:
    """The coarsest step of each channel over the given box profiles (the fleet's boxes)."""
    out: dict[str, float] = {}
    for profile in profiles:
        for channel in profile.channels:
            step = register_step(channel)
            out[channel.channel] = max(out.get(channel.channel, 0.0), step)
    return out


def effective_noise(noise: float, quantum: float) -> float:
    """Sensor noise with the rounding error of a register of step `quantum` added."""
    return math.sqrt(noise * noise + quantum * quantum / 12.0)
