"""`envpatrol ingest` and `envpatrol migrate`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import psycopg

from edge.cli import stop_on_signals
from edge.mqtt import SettingsError
from ingest.migrate import migrate
from ingest.service import IngestService
from ingest.settings import load_ingest_settings


def ingest_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config", help="ingest TOML file (see deploy/config/ingest.toml)")

    def run(args: argparse.Namespace) -> int:
        try:
            settings = load_ingest_settings(args.config)
        except SettingsError as exc:
            print(f"envpatrol ingest: {exc}", file=sys.stderr)
            return 2
        IngestService(settings).run(stop_on_signals())
        return 0

    return run


def migrate_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config", help="ingest TOML file; ENVPATROL_DATABASE_URL also works")

    def run(args: argparse.Namespace) -> int:
        try:
            settings = load_ingest_settings(args.config)
        except SettingsError as exc:
            print(f"envpatrol migrate: {exc}", file=sys.stderr)
            return 2
        with psycopg.connect(settings.database_url) as conn:
            backend = migrate(conn, settings.h3_resolution)
        print(f"schema up to date ({backend})")
        return 0

    return run
