"""Hotspot detection scored over generated worlds (or scenario files) with known sources.

Each world (firmware_sim.worlds.generate_world, or a scenario file given with --scenario) is
simulated with numpy (bench.world_readings: drive, field, modules, GPS, box profile, the agent's
flags), its readings go through the ingest's pass builder and the job's table conversion, and
for each H3 resolution and pass count N the data are cut at the first local day at which the
median source cell has N passes; then `detect` with the default settings and the two naive
baselines run on the same table and are scored with hotspots.scoring (bench.world_scoring).
Null worlds (no sources) count false hotspots of every analysed pollutant. Beside the targets
it reports a bound: the recall of a test that knows each source's place and what it adds to every
reading (world_scoring.StreetSignal.oracle_snr), which no method can expect to beat.

    .venv/bin/python -m bench.hotspot_worlds --family mixed --worlds 30 --nulls 20 --seed 1
    .venv/bin/python -m bench.hotspot_worlds --scenario firmware_sim/scenarios/shuangjing.toml \\
        --days 21 --nulls 4
    .venv/bin/python -m bench.hotspot_worlds --quick                # 2 + 2 worlds, a smoke run
    .venv/bin/python -m bench.hotspot_worlds --from-json out.json   # the tables again
    .venv/bin/python -m bench.hotspot_worlds --self-check           # fast models vs scalar ones

The tables are printed as markdown, ready for docs/hotspot-evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bench import world_scoring
from bench.world_scoring import WorldSpec, evaluate_world
from hotspots.scoring import (
    Counts,
    days_band,
    offstreet_band,
    pair_band,
    signal_band,
    strength_band,
)

PASS_COUNTS = (4, 8, 12, 20, 30)
TARGET_PASSES = 20
METHOD_NAMES = {"detector": "detector", "threshold": "threshold", "gi_raw": "Gi* raw"}

World = dict[str, Any]
Record = dict[str, Any]


# ---------------------------------------------------------------------------- running


def world_specs(args: argparse.Namespace) -> list[WorldSpec]:
    specs: list[WorldSpec] = []
    if args.scenario:
        for i, path in enumerate(args.scenario):
            specs.append(WorldSpec(i, None, 0, False, args.days, path, args.file_days))
        for k in range(args.nulls):
            path = args.scenario[k % len(args.scenario)]
            seed = args.seed * 1000 + 500 + k
            specs.append(WorldSpec(len(specs), None, seed, True, args.days, path, args.file_days))
        return specs
    for i in range(args.worlds):
        specs.append(WorldSpec(i, args.family, args.seed * 1000 + i, False, args.days))
    for k in range(args.nulls):
        seed = args.seed * 1000 + 500 + k
        specs.append(WorldSpec(len(specs), args.family, seed, True, args.days))
    return specs


def _run(job: tuple[WorldSpec, tuple[int, ...], tuple[int, ...]]) -> tuple[int, World]:
    spec, resolutions, passes = job
    return spec.index, evaluate_world(spec, resolutions, passes)


def run_worlds(
    specs: Sequence[WorldSpec], resolutions: tuple[int, ...], passes: tuple[int, ...], workers: int
) -> list[World]:
    jobs = [(s, resolutions, passes) for s in specs]
    done: dict[int, World] = {}
    if workers <= 1:
        done.update(_run(j) for j in jobs)
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for index, world in pool.imap_unordered(_run, jobs):
                done[index] = world
                print(f"  {world['world']}: {world['timing']}", file=sys.stderr, flush=True)
    return [done[i] for i in sorted(done)]


def machine() -> dict[str, str]:
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            (line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line),
            "",
        )
    except OSError:
        pass
    with open("/proc/loadavg", encoding="ascii") as f:
        load = " ".join(f.read().split()[:3])
    return {"nproc": str(os.cpu_count() or 1), "cpu": model, "load": load}


# ---------------------------------------------------------------------------- reading records


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _records(
    worlds: Sequence[World], resolution: int, passes: int, null: bool
) -> Iterator[tuple[World, Record]]:
    """The cut records of one resolution and pass count (worlds whose cut was reached)."""
    for w in worlds:
        if w["null"] != null:
            continue
        for r in w["records"]:
            if r["resolution"] == resolution and r["passes"] == passes and "methods" in r:
                yield w, r


def _counts(worlds: Sequence[World], resolution: int, passes: int, method: str) -> Counts:
    c = Counts()
    for _, r in _records(worlds, resolution, passes, null=False):
        m = r["methods"][method]
        c.tp += m["tp"]
        c.fp += m["fp"]
        c.fn += m["fn"]
        c.duplicates += m["dup"]
        c.errors_m.extend(m["errors_m"])
    return c


def _null_false(worlds: Sequence[World], resolution: int, passes: int, method: str) -> int:
    return sum(r["methods"][method]["fp"] for _, r in _records(worlds, resolution, passes, True))


def _objects(
    worlds: Sequence[World], resolution: int, passes: int
) -> Iterator[tuple[World, Record, int, dict[str, Any]]]:
    for w, r in _records(worlds, resolution, passes, null=False):
        for j, cls in enumerate(w["sources"]):
            signal = r.get("signal") or [None] * len(w["sources"])
            yield w, r, j, {**cls, "profile": r["profiles"][j], "signal": signal[j]}


def _share(hits: Sequence[bool]) -> str:
    if not hits:
        return "-"
    return f"{sum(hits)}/{len(hits)} ({sum(hits) / len(hits):.2f})"


Classifier = Callable[[dict[str, Any]], str]

CLASSES: dict[str, Classifier] = {
    "geometry": lambda c: str(c["geometry"]),
    "schedule": lambda c: "meals/scheduled" if c["schedule"] != "always" else "always",
    "days share": lambda c: days_band(c["days"]),
    "strength (amplitude / sensor sigma)": lambda c: strength_band(c["sigma"]),
    "street signal (mean added to the readings in its cell / sensor sigma)": lambda c: signal_band(
        c["signal"]
    ),
    "off-street": lambda c: offstreet_band(c["offstreet_m"]),
    "nearest same-pollutant source": lambda c: pair_band(c["pair_m"]),
    "pollutant": lambda c: str(c["pollutant"]),
    "profile (boxes measuring it in its cell)": lambda c: str(c["profile"]),
}


ORACLE_ALPHAS = (0.001, 1e-6)
ON_OFF_MIN = 3
ORACLE_KEYS = {
    "oracle_snr": "every reading",
    "oracle_pass_snr": "pass means within its match radius",
    "oracle_blind_snr": "cell means within its match radius, not knowing when it works",
}


def _oracle_recall(
    worlds: Sequence[World], res: int, n: int, alpha: float, key: str
) -> float | None:
    """Mean power over the scored sources of the test that knows each source's place and
    signal (world_scoring.StreetSignal.oracle_snr): the recall no method can expect to beat
    at that false-alarm rate per source."""
    z = statistics.NormalDist().inv_cdf(1.0 - alpha)
    powers = [
        statistics.NormalDist().cdf(snr - z)
        for _, r in _records(worlds, res, n, null=False)
        for snr in r.get(key, ())
        if snr is not None
    ]
    return sum(powers) / len(powers) if powers else None


def _intermittent(c: dict[str, Any]) -> bool:
    """On at least half of the days, and not all the time (days share < 1, or a schedule)."""
    return bool(c["days"] >= 0.5 and (c["days"] < 1.0 or c["schedule"] != "always"))


# ---------------------------------------------------------------------------- report


def report(worlds: Sequence[World], resolutions: Sequence[int], passes: Sequence[int]) -> str:
    lines: list[str] = []
    add = lines.append
    sources = [w for w in worlds if not w["null"]]
    nulls = [w for w in worlds if w["null"]]
    objects = sum(len(w["sources"]) for w in sources)
    add(
        f"Worlds with sources: {len(sources)} ({objects} source-pollutants); null worlds: "
        f"{len(nulls)}; readings: {sum(w['readings'] for w in worlds):,}."
    )
    unmeasured = sum(len(w.get("unmeasured", ())) for w in sources)
    if unmeasured:
        add(
            f"{unmeasured} source-pollutants no box of their world measures within reach of the source are not scored."
        )
    for res in resolutions:
        add(f"\n### Resolution {res}\n")
        lines.extend(_main_table(worlds, res, passes))
        if TARGET_PASSES in passes:
            lines.extend(_targets(worlds, res))
        lines.extend(_class_tables(worlds, res, passes))
        lines.extend(_null_table(worlds, res, passes))
        lines.extend(_first_detection(worlds, res, passes))
    return "\n".join(lines)


def _main_table(worlds: Sequence[World], res: int, passes: Sequence[int]) -> list[str]:
    n_src = sum(not w["null"] for w in worlds)
    n_null = sum(bool(w["null"]) for w in worlds)
    out = [
        "| passes | worlds cut | median cut day | objects | precision | recall | F1 "
        "| duplicates | median loc. error m | null worlds cut | false hotspots, null worlds "
        "| threshold P / R / F1 | null | Gi* raw P / R / F1 | null |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in passes:
        cut = list(_records(worlds, res, n, null=False))
        cut_null = list(_records(worlds, res, n, null=True))
        days = [r["day"] + 1 for _, r in cut]
        d = _counts(worlds, res, n, "detector")
        base = []
        for method in ("threshold", "gi_raw"):
            c = _counts(worlds, res, n, method)
            base.append(f"{_fmt(c.precision)} / {_fmt(c.recall)} / {_fmt(c.f1)}")
            base.append(str(_null_false(worlds, res, n, method)))
        out.append(
            f"| {n} | {len(cut)}/{n_src} | {_fmt(statistics.median(days) if days else None, 0)} "
            f"| {d.tp + d.fn} | {_fmt(d.precision)} | {_fmt(d.recall)} | {_fmt(d.f1)} "
            f"| {d.duplicates} | {_fmt(d.median_error_m, 0)} | {len(cut_null)}/{n_null} "
            f"| {_null_false(worlds, res, n, 'detector')} | " + " | ".join(base) + " |"
        )
    out.append(
        "\nCut day: local days of data until the median source cell has N passes. Duplicates: "
        "further detections within reach of a found source (neither true nor false)."
    )
    return out


def _targets(worlds: Sequence[World], res: int) -> list[str]:
    n = TARGET_PASSES
    d = _counts(worlds, res, n, "detector")
    pairs: list[bool] = []
    close: list[bool] = []
    for w, r in _records(worlds, res, n, null=False):
        found = r["found"]["detector"]
        for j, k, gap in w["pairs"]:
            both = bool(found[int(j)] and found[int(k)])
            (pairs if gap >= 250.0 else close).append(both)
    episodic = [
        (r["found"]["detector"][j], r["in_time"][j])
        for _, r, j, c in _objects(worlds, res, n)
        if _intermittent(c)
    ]
    seen_both = [
        bool(r["in_time"][j])
        for _, r, j, c in _objects(worlds, res, n)
        if _intermittent(c)
        and r["found"]["detector"][j]
        and "on_off" in r
        and min(r["on_off"][j]) >= ON_OFF_MIN
    ]
    visible = [
        bool(r["found"]["detector"][j])
        for _, r, j, c in _objects(worlds, res, n)
        if c["signal"] is not None and c["signal"] >= 1.0
    ]
    bounds = {
        (key, alpha): _oracle_recall(worlds, res, n, alpha, key)
        for key in ORACLE_KEYS
        for alpha in ORACLE_ALPHAS
    }
    recall_int = [f for f, _ in episodic]
    in_time = [t for f, t in episodic if f]
    false_null = _null_false(worlds, res, n, "detector")

    def met(ok: bool | None) -> str:
        return "-" if ok is None else ("yes" if ok else "**no**")

    share_pairs = sum(pairs) / len(pairs) if pairs else None
    rows = [
        (
            "precision >= 0.9",
            _fmt(d.precision),
            met(None if d.precision is None else d.precision >= 0.9),
        ),
        ("recall >= 0.85", _fmt(d.recall), met(None if d.recall is None else d.recall >= 0.85)),
        (
            "same-pollutant pairs 250-400 m apart: both found >= 0.8",
            f"{_share(pairs)}",
            met(None if share_pairs is None else share_pairs >= 0.8),
        ),
        ("(pairs < 250 m apart: both found)", _share(close), "-"),
        ("(recall of sources adding >= 1 sensor sigma in their cell)", _share(visible), "-"),
        *(
            (
                f"(bound: recall of a test that knows each source, {ORACLE_KEYS[key]}, "
                f"one-sided alpha = {alpha:g})",
                _fmt(bound),
                "-",
            )
            for (key, alpha), bound in bounds.items()
        ),
        ("sources on >= 50 % of days, not always on: recall", _share(recall_int), "-"),
        ("... of those found: episodic or in their time stratum", _share(in_time), "-"),
        (
            f"(... of those found whose cell saw it on and off, >= {ON_OFF_MIN} passes each)",
            _share(seen_both),
            "-",
        ),
        ("false hotspots in the null worlds <= 1", str(false_null), met(false_null <= 1)),
        (
            "median localisation error < 30 m",
            _fmt(d.median_error_m, 1),
            met(None if d.median_error_m is None else d.median_error_m < 30),
        ),
    ]
    out = [
        f"\n#### Resolution {res}: targets at {n} passes\n",
        "| target | value | met? |",
        "|---|---|---|",
    ]
    out.extend(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return out


def _class_tables(worlds: Sequence[World], res: int, passes: Sequence[int]) -> list[str]:
    out: list[str] = []
    for title, classify in CLASSES.items():
        out.append(f"\n#### Resolution {res}: detector recall by {title}\n")
        out.append("| class | " + " | ".join(f"{n} passes" for n in passes) + " |")
        out.append("|---|" + "---|" * len(passes))
        table: dict[str, dict[int, list[bool]]] = defaultdict(lambda: defaultdict(list))
        for n in passes:
            for _, r, j, c in _objects(worlds, res, n):
                table[classify(c)][n].append(bool(r["found"]["detector"][j]))
        for key in sorted(table):
            out.append(f"| {key} | " + " | ".join(_share(table[key][n]) for n in passes) + " |")
    return out


def _null_table(worlds: Sequence[World], res: int, passes: Sequence[int]) -> list[str]:
    by: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for n in passes:
        for _, r in _records(worlds, res, n, null=True):
            for p, k in r["methods"]["detector"]["fp_by_pollutant"].items():
                by[p][n] += k
    out = [f"\n#### Resolution {res}: false hotspots in the null worlds by pollutant\n"]
    if not by:
        out.append("None at any pass count.")
        return out
    out.append("| pollutant | " + " | ".join(f"{n} passes" for n in passes) + " |")
    out.append("|---|" + "---|" * len(passes))
    for p in sorted(by):
        out.append(f"| {p} | " + " | ".join(str(by[p][n]) for n in passes) + " |")
    return out


def _first_detection(worlds: Sequence[World], res: int, passes: Sequence[int]) -> list[str]:
    """The passes-needed curve: recall against N, and each object's first N found."""
    first: dict[tuple[str, int], int | None] = {}
    for n in sorted(passes):
        for w, r, j, _ in _objects(worlds, res, n):
            key = (w["world"], j)
            if key not in first:
                first[key] = None
            if r["found"]["detector"][j] and first[key] is None:
                first[key] = n
    seen = [v for v in first.values() if v is not None]
    return [
        f"\nPasses until first detection (resolution {res}): median "
        f"{_fmt(statistics.median(seen) if seen else None, 0)} over the {len(seen)} "
        f"source-pollutants found by {max(passes)} passes; {len(first) - len(seen)} of "
        f"{len(first)} never found."
    ]


# ---------------------------------------------------------------------------- main


def by_area(resolution: int | None, args: argparse.Namespace) -> None:
    """Detect area by area in every world (forked workers inherit it); --quick's counts."""
    if args.quick:
        args.worlds, args.nulls = 2, 2
    if resolution is not None:
        world_scoring.AREAS = (resolution, 400.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--family", default="mixed", help="generated world family")
    parser.add_argument(
        "--scenario", action="append", help="a scenario file instead of a family (repeatable)"
    )
    parser.add_argument("--worlds", type=int, default=30)
    parser.add_argument("--nulls", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=21, help="days of each generated world")
    parser.add_argument(
        "--file-days", type=int, help="run scenario files for this many days (their shifts daily)"
    )
    parser.add_argument("--resolutions", default="10,11")
    parser.add_argument("--passes", default=",".join(str(n) for n in PASS_COUNTS))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="2 worlds and 2 null worlds")
    parser.add_argument("--json", help="write every world's records to this file")
    parser.add_argument("--from-json", help="report the records of an earlier --json run")
    parser.add_argument(
        "--area-resolution",
        type=int,
        help="detect area by area (H3 parents at this resolution, 400 m halos), as the job does",
    )
    parser.add_argument(
        "--self-check", action="store_true", help="check the fast models against the scalar ones"
    )
    args = parser.parse_args(argv)
    if args.self_check:
        from bench.world_readings import self_check

        problems = self_check()
        for p in problems:
            print(p)
        print("self-check: " + ("ok" if not problems else f"{len(problems)} problems"))
        return 1 if problems else 0
    by_area(args.area_resolution, args)
    resolutions = tuple(int(r) for r in args.resolutions.split(","))
    passes = tuple(int(n) for n in args.passes.split(","))
    command = "python -m bench.hotspot_worlds " + shlex.join(sys.argv[1:] if argv is None else argv)
    before = machine()
    started = time.perf_counter()
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as f:
            saved = json.load(f)
        worlds, meta = saved["worlds"], saved["meta"]
        resolutions, passes = tuple(meta["resolutions"]), tuple(meta["passes"])
    else:
        worlds = run_worlds(world_specs(args), resolutions, passes, args.workers)
        meta = {
            "command": command,
            "wall_s": round(time.perf_counter() - started, 1),
            "workers": args.workers,
            "machine_before": before,
            "machine_after": machine(),
            "resolutions": list(resolutions),
            "passes": list(passes),
        }
    print("## Hotspot detection over generated worlds\n")
    print("```console")
    print(f"$ .venv/bin/{meta['command']}")
    print("```\n")
    m0, m1 = meta["machine_before"], meta["machine_after"]
    print(
        f"Wall time {meta['wall_s']:.0f} s on {meta['workers']} workers; nproc {m0['nproc']}, "
        f"{m0['cpu']}; load average {m0['load']} at the start, {m1['load']} at the end."
    )
    timing: dict[str, float] = defaultdict(float)
    for w in worlds:
        for k, v in w["timing"].items():
            timing[k] += v
    print(
        "Summed over worlds: "
        + ", ".join(f"{k.removesuffix('_s')} {v:.0f} s" for k, v in sorted(timing.items()))
        + ".\n"
    )
    print(report(worlds, resolutions, passes))
    if args.json and not args.from_json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "worlds": worlds}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
