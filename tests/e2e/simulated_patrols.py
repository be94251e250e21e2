"""The simulated patrols now live in `demo.patrol_data`; the dashboard's browser test still
imports them from here."""

from __future__ import annotations

from demo.patrol_data import simulated_readings
from demo.patrol_data import store_readings as store

__all__ = ["simulated_readings", "store"]
