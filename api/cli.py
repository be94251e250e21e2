"""`envpatrol api`: serve the HTTP API with uvicorn."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
from collections.abc import Callable

# Imported here so that on a vehicle, which lacks the server packages, the `envpatrol` command
# lists `api` as not installed instead of failing when it runs.
import uvicorn

from api.settings import load_api_settings
from edge.errors import SettingsError


def api_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config", help="API TOML file (see deploy/config/api.toml)")
    parser.add_argument("--host", help="listen address (default: [api] host, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: [api] port, else 8080)")

    def run(args: argparse.Namespace) -> int:
        from api.app import create_app
        from api.streets import StreetFileError

        try:
            settings = load_api_settings(args.config)
            overrides: dict[str, object] = {}
            if args.host is not None:
                overrides["host"] = args.host
            if args.port is not None:
                overrides["port"] = args.port
            settings = dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]
        except SettingsError as exc:
            print(f"envpatrol api: {exc}", file=sys.stderr)
            return 2
        try:
            app = create_app(settings)
        except StreetFileError as exc:
            print(f"envpatrol api: dashboard.streets_file: {exc}", file=sys.stderr)
            return 2
        # Everything imported and built so far lives as long as the server: out of the cyclic
        # garbage collector's sight, a full collection no longer walks it: walking the start-up
        # objects stalled large responses (docs/performance.md).
        gc.collect()
        gc.freeze()
        # log_config=None keeps the logging the `envpatrol` command set up.
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)
        return 0

    return run
