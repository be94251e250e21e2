"""`envpatrol analyse`: the hotspot job from the command line, once or periodically.

The dispatcher (edge.cli) loads this module only for `envpatrol analyse`, and an installation
without the analysis' extra fails here, on import, where the dispatcher names the extra."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import psycopg

from edge.cli import stop_on_signals
from edge.errors import SettingsError
from hotspots.analysis.settings import AnalysisSettings
from hotspots.area_runs import AreaRunner
from hotspots.job import run_once, run_periodically, serve_pending
from hotspots.settings import load_hotspot_settings
from ingest.settings import load_ingest_settings
from store.failures import reported
from store.migrate import BackendError, migrate

__all__ = ["analyse_command"]


def analyse_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = (
        "Run the hotspot analysis over the stored passes and write its results for the API:"
        " once (--once) or every --interval-min minutes until stopped."
    )
    parser.add_argument(
        "--config", help="TOML file ([database], [hotspots]); ENVPATROL_DATABASE_URL also works"
    )
    parser.add_argument("--once", action="store_true", help="run once and exit")
    parser.add_argument("--interval-min", type=float, help="periodic mode (60)")
    parser.add_argument("--window-days", type=float, help="passes analysed (30)")
    parser.add_argument("--keep-runs", type=int, help="runs kept (24)")
    parser.add_argument(
        "--timezone",
        help=f"IANA zone of the local days and time-of-day strata ({AnalysisSettings().timezone})",
    )
    parser.add_argument("--workers", type=int, help="analysis processes (1)")
    parser.add_argument(
        "--areas",
        choices=("on", "off"),
        help="analyse area by area, incrementally when periodic (on)",
    )

    @reported("analyse")
    def run(args: argparse.Namespace) -> int:
        try:
            settings = load_ingest_settings(args.config)
            job = load_hotspot_settings(
                args.config,
                {
                    "window_days": args.window_days,
                    "interval_min": args.interval_min,
                    "keep_runs": args.keep_runs,
                    "timezone": args.timezone,
                    "workers": args.workers,
                    "areas": None if args.areas is None else args.areas == "on",
                },
            )
        except SettingsError as exc:
            print(f"envpatrol analyse: {exc}", file=sys.stderr)
            return 2
        try:
            with psycopg.connect(settings.database_url) as conn:
                migrate(conn, settings.h3_resolution, backend=settings.database_backend)
        except BackendError as exc:
            print(f"envpatrol analyse: {exc}", file=sys.stderr)
            return 2
        with AreaRunner(job.areas) as runner:
            if args.once:
                with psycopg.connect(settings.database_url) as conn:
                    summary = run_once(conn, job, runner=runner)
                print(
                    json.dumps(
                        {
                            "run": summary.run_id,
                            "passes": summary.passes,
                            "hotspots": summary.hotspots,
                            "areas": summary.areas,
                            "seconds": round(summary.seconds, 2),
                        }
                    )
                )
                return 0
            run_periodically(
                lambda: psycopg.connect(settings.database_url, autocommit=True),
                job,
                stop_on_signals(),
                between=lambda conn: serve_pending(conn, job, runner=runner),
                runner=runner,
            )
        return 0

    return run
