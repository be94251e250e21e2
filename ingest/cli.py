"""`envpatrol ingest`, `envpatrol migrate` and `envpatrol rebuild`."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable
from datetime import timedelta

import psycopg

from edge.cli import stop_on_signals
from edge.errors import SettingsError
from ingest.rebuild import rebuild
from ingest.service import IngestService
from ingest.settings import load_ingest_settings
from store.failures import reported
from store.migrate import BackendError, migrate

GC_YOUNG_THRESHOLD = 10_000  # new containers between young collections (CPython's default: 700)


def ingest_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config", help="ingest TOML file (see deploy/config/ingest.toml)")

    def run(args: argparse.Namespace) -> int:
        try:
            settings = load_ingest_settings(args.config)
        except SettingsError as exc:
            print(f"envpatrol ingest: {exc}", file=sys.stderr)
            return 2
        service = IngestService(settings)
        # A batch is tens of thousands of freshly made rows (tuples, lists, dicts), alive until
        # it is committed: with the collector's default of a young collection every 700 new
        # containers, and the older generations walked every 10 of those, collecting took a large
        # share of the decoder's time (docs/performance.md), for garbage that reference
        # counting frees anyway (the rows hold no cycles). The young generation is collected
        # every 10,000 instead, and the start-up objects (modules, the settings) are moved out of
        # the collector's sight (docs/performance.md, Ingest).
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        try:
            service.run(stop_on_signals())
        except BackendError as exc:
            print(f"envpatrol ingest: {exc}", file=sys.stderr)
            return 2
        return 0

    return run


def migrate_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config", help="ingest TOML file; ENVPATROL_DATABASE_URL also works")

    @reported("migrate")
    def run(args: argparse.Namespace) -> int:
        try:
            settings = load_ingest_settings(args.config)
        except SettingsError as exc:
            print(f"envpatrol migrate: {exc}", file=sys.stderr)
            return 2
        try:
            with psycopg.connect(settings.database_url) as conn:
                backend = migrate(conn, settings.h3_resolution, backend=settings.database_backend)
        except BackendError as exc:
            print(f"envpatrol migrate: {exc}", file=sys.stderr)
            return 2
        print(f"schema up to date ({backend})")
        return 0

    return run


def rebuild_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.description = (
        "Recompute every reading's cell, the hourly rollups and the passes from the stored"
        " positions, at a new H3 resolution and/or pass gap. Nothing is re-ingested. Run it as"
        " the database owner; the ingest may keep running (its batches wait, then follow)."
    )
    parser.add_argument("--config", help="ingest TOML file; ENVPATROL_DATABASE_URL also works")
    parser.add_argument(
        "--resolution", type=int, help="H3 resolution 0..15 (default: keep the current one)"
    )
    parser.add_argument(
        "--pass-gap-s",
        type=float,
        help="longest gap in seconds between two readings of one pass (default: keep)",
    )

    @reported("rebuild")
    def run(args: argparse.Namespace) -> int:
        try:
            settings = load_ingest_settings(args.config)
        except SettingsError as exc:
            print(f"envpatrol rebuild: {exc}", file=sys.stderr)
            return 2
        gap = None if args.pass_gap_s is None else timedelta(seconds=args.pass_gap_s)
        with psycopg.connect(settings.database_url) as conn:
            try:
                migrate(conn, settings.h3_resolution, backend=settings.database_backend)
                conn.autocommit = False
                report = rebuild(conn, args.resolution, gap)
            except (BackendError, ValueError) as exc:
                print(f"envpatrol rebuild: {exc}", file=sys.stderr)
                return 2
        print(
            f"rebuilt at H3 resolution {report.resolution}, pass gap"
            f" {report.pass_gap.total_seconds():g} s: {report.readings} positioned readings,"
            f" {report.rollups} rollup rows, {report.passes} passes in {report.seconds:.1f} s"
        )
        return 0

    return run
