"""The ingest's decoder, in process: the usual message through msgspec's road against the same
message through the full checks alone.

    .venv/bin/python -m bench.ingest_decode [--vehicles 200] [--per-vehicle 100]
                                            [--per-message 1,50] [--repeats 5]
    .venv/bin/python -m bench.ingest_decode --collector [--repeats 5]

A fleet's messages, as `bench.ingest` publishes them, decoded into `reading` rows by
`ingest.decode.decode_rows` (the road the ingest takes: msgspec first) and by the checks alone
(`ingest.decode._decode` and the checks around it, the road every message took before, and
still the one that decides every rejection), alternately, `--repeats` times each; microseconds per reading, the median and
the best run. The two give the same rows (`tests/unit/ingest/test_decode.py`).

With `--collector`: what Python's cyclic garbage collector costs the decoder as the ingest uses
it, building a batch of 50,000 readings (1,000 messages of 50 from 1,000 vehicles) while the
previous batch is still alive, with the collector's default young threshold (700 new
containers), with the ingest's (`ingest.cli.GC_YOUNG_THRESHOLD`), and with the collector off,
alternately.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson

from bench.ingest import fleet, messages
from edge.topics import Topics
from ingest import decode
from ingest.cli import GC_YOUNG_THRESHOLD
from ingest.validate import Accepted, Limits, vehicle_of_topic


def collector(repeats: int) -> None:
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    payloads = messages(fleet(1000, 100, start), 50)[:2000]
    topics, now = Topics(), datetime.now(UTC)

    def batch(part: list[tuple[str, bytes]]) -> list[decode.Row]:
        rows: list[decode.Row] = []
        for topic, payload in part:
            got = decode.decode_rows(topics, topic, payload, 10, orjson.loads, now)
            assert isinstance(got, Accepted), got
            rows.extend(got.readings)
        return rows

    default = gc.get_threshold()
    settings = {
        f"young threshold {default[0]} (default)": default,
        f"young threshold {GC_YOUNG_THRESHOLD} (the ingest's)": (GC_YOUNG_THRESHOLD, *default[1:]),
        "collector off": None,
    }
    spent: dict[str, list[float]] = {name: [] for name in settings}
    try:
        for _ in range(repeats):
            for name, threshold in settings.items():
                gc.enable()
                if threshold is None:
                    gc.disable()
                else:
                    gc.set_threshold(*threshold)
                previous = batch(payloads[:1000])  # the batch being written meanwhile
                t0 = time.perf_counter()
                rows = batch(payloads[1000:])
                spent[name].append((time.perf_counter() - t0) / len(rows) * 1e6)
                del previous, rows
    finally:
        gc.enable()
        gc.set_threshold(*default)
    print("| collector | median us/reading | best |")
    print("|---|---:|---:|")
    for name, times in spent.items():
        print(f"| {name} | {statistics.median(times):.1f} | {min(times):.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vehicles", type=int, default=200)
    parser.add_argument("--per-vehicle", type=int, default=100)
    parser.add_argument("--per-message", default="1,50")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--collector", action="store_true", help="the collector's cost instead")
    args = parser.parse_args()
    if args.collector:
        collector(args.repeats)
        return 0
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    readings = fleet(args.vehicles, args.per_vehicle, start)
    n = args.vehicles * args.per_vehicle
    topics, now, limits = Topics(), datetime.now(UTC), Limits()
    latest = now + limits.max_future

    def usual(topic: str, payload: bytes) -> object:
        return decode.decode_rows(topics, topic, payload, 10, orjson.loads, now, limits)

    def checks(topic: str, payload: bytes) -> object:
        """`decode_rows` as it runs for a message the msgspec road does not take."""
        vehicle_of_topic(topics, topic, payload, limits)
        _vehicle, rows, _rejected = decode._decode(
            payload, orjson.loads, 10, limits.earliest, latest
        )
        return rows

    print("| readings per message | road | median us/reading | best |")
    print("|---:|---|---:|---:|")
    for per in (int(p) for p in args.per_message.split(",")):
        payloads = messages(readings, per)
        spent: dict[str, list[float]] = {
            "msgspec, then the checks' leftovers": [],
            "checks only": [],
        }
        roads: list[tuple[str, Callable[[str, bytes], object]]] = [
            ("msgspec, then the checks' leftovers", usual),
            ("checks only", checks),
        ]
        for _ in range(args.repeats):
            for name, road in roads:
                t0 = time.perf_counter()
                for topic, payload in payloads:
                    road(topic, payload)
                spent[name].append((time.perf_counter() - t0) / n * 1e6)
        for name, times in spent.items():
            print(f"| {per} | {name} | {statistics.median(times):.1f} | {min(times):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
