"""How long the full hotspot analysis takes on one month of a 10-vehicle sub-district fleet.

Synthetic passes (hotspots.analysis.synthetic) shaped like the real load: a street grid of about
3 km2 (8 x 8 streets, 250 m apart, ~28 km of street, like Shuangjing sub-district), 10 vehicles,
30 days, 5 trips a day each driving every street (~2.4 h a trip at 10 s per cell, so ~12 h on
the road a day: two shifts, more than a single-shift fleet drives), H3 resolution 11, six
pollutants, a handful of sources. `detect` runs over all of it: every
pollutant, every time-of-day stratum, spatial tests included. Target: under 10 s.

    .venv/bin/python bench/hotspots_scale.py [--days 30] [--vehicles 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

from hotspots.analysis.detect import detect
from hotspots.analysis.settings import AnalysisSettings
from hotspots.analysis.synthetic import SHUANGJING, Source, SyntheticWorld, generate, match, offset

POLLUTANTS = ("pm25", "pm10", "no2", "noise", "co", "o3")


def synthetic_world(days: int, vehicles: int) -> SyntheticWorld:
    streets = [-875.0 + 250.0 * i for i in range(8)]
    sources = (
        Source(*offset(SHUANGJING, streets[1], 300.0), "pm25", 15.0, 40.0),
        Source(*offset(SHUANGJING, -200.0, streets[5]), "pm25", 25.0, 60.0, "meals"),
        Source(*offset(SHUANGJING, streets[6], -420.0), "no2", 20.0, 40.0),
        Source(*offset(SHUANGJING, streets[3], 610.0), "noise", 6.0, 50.0),
        Source(*offset(SHUANGJING, 480.0, streets[2]), "pm10", 150.0, 30.0, 0.2),
    )
    return SyntheticWorld(
        streets_ns=8,
        streets_ew=8,
        street_spacing_m=250.0,
        vehicles=vehicles,
        days=days,
        trips_per_day=5,
        trip_every_h=2.4,
        trip_start_h=0.5,
        pollutants=POLLUTANTS,
        pass_noise={
            "pm25": 3.0, "pm10": 6.0, "no2": 4.0, "noise": 1.5, "co": 0.1, "o3": 5.0,
        },
        base_level={
            "pm25": 35.0, "pm10": 70.0, "no2": 40.0, "noise": 62.0, "co": 0.8, "o3": 60.0,
        },
        drift={"pm25": 10.0, "pm10": 15.0, "no2": 8.0, "noise": 2.0, "co": 0.2, "o3": 10.0},
        sources=sources,
        seed=7,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--vehicles", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    started = time.perf_counter()
    table = generate(synthetic_world(args.days, args.vehicles))
    generated = time.perf_counter() - started
    settings = AnalysisSettings()

    # The first run also fills the caches (neighbour lists, permutations) later runs reuse.
    started = time.perf_counter()
    found = detect(table, settings)
    first = time.perf_counter() - started
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        found = detect(table, settings)
        times.append(time.perf_counter() - started)

    cells = len(set(table.cell.tolist()))
    world = synthetic_world(args.days, args.vehicles)
    truth = world.sources
    # A source counts as found when a hotspot of its pollutant, in any stratum, lies within 75 m.
    found_sources = sum(
        match(
            [(h.lat, h.lon) for h in found if h.pollutant == source.pollutant], [source]
        ).true_positives
        for source in truth
    )
    unmatched = sum(
        1
        for h in found
        if not match(
            [(h.lat, h.lon)], [s for s in truth if s.pollutant == h.pollutant]
        ).true_positives
    )
    labels: dict[str, int] = {}
    for spot in found:
        labels[spot.label.value] = labels.get(spot.label.value, 0) + 1
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"passes:            {len(table):,} ({len(POLLUTANTS)} pollutants each)")
    print(f"cells:             {cells:,} (H3 resolution {world.resolution})")
    print(f"vehicles x days:   {args.vehicles} x {args.days}")
    print(f"generate:          {generated:.2f} s")
    print(f"detect, first run: {first:.2f} s (fills the caches)")
    print(
        f"detect, warm:      median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s over {args.repeat} runs"
    )
    print(f"hotspots:          {len(found)} {labels} (all strata)")
    print(
        f"sources found:     {found_sources} of {len(truth)}; hotspots away from any: {unmatched}"
    )
    print(f"peak RSS:          {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
