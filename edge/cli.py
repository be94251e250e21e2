"""The `envpatrol` command. Subcommands register under the `envpatrol.commands` entry-point group,
so this dispatcher (installed on every vehicle) never imports a server package itself."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib.metadata import entry_points
from typing import Any

from edge import __version__

Command = Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], int]]

_HELP = {
    "edge": "run the edge agent on a vehicle (serial box + GPS -> disk outbox -> MQTT)",
    "sim": "run a simulated box and GPS on pseudo-terminals for a patrol vehicle",
    "demo": "run the whole system on this machine with simulated vehicles",
    "replay": "replay a recorded drive through the pipeline",
    "ingest": "run the ingest service (MQTT -> PostgreSQL)",
    "migrate": "apply the database migrations",
    "api": "run the officers' HTTP API and map dashboard",
    "rebuild": "rebuild cells, rollups and passes at another H3 resolution",
    "analyse": "run the hotspot analysis over the stored passes (once or periodically)",
    "apikey": "create, list and revoke the API's keys",
}

# The extra that installs what each command imports (pyproject.toml, one extra per host role).
COMMAND_EXTRAS = {
    "edge": "edge",
    "sim": "edge",
    "replay": "edge",
    "ingest": "ingest",
    "migrate": "ingest",
    "rebuild": "ingest",
    "api": "api",
    "apikey": "api",
    "analyse": "hotspots",
    "demo": "server,embedded",
}


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so services shut down cleanly."""
    stop = threading.Event()

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="envpatrol",
        description="Mobile environmental sensing on city patrol vehicles.",
    )
    parser.add_argument("--version", action="version", version=f"envpatrol {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    missing: dict[str, str] = {}
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Only the command being run is imported: `envpatrol edge` on a gateway with the server
    # extras installed must not carry FastAPI and psycopg in its memory.
    chosen = next((a for a in args_list if not a.startswith("-")), None)
    for ep in sorted(entry_points(group="envpatrol.commands"), key=lambda e: e.name):
        help_text = _HELP.get(ep.name, "")
        if chosen is not None and ep.name != chosen:
            sub.add_parser(ep.name, help=help_text)
            continue
        try:
            register: Command = ep.load()
        except ImportError as exc:
            missing[ep.name] = str(exc)
            sub.add_parser(ep.name, help=f"{help_text} [not installed here]")
            continue
        command_parser = sub.add_parser(ep.name, help=help_text, description=help_text)
        command_parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        runners[ep.name] = register(command_parser)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in missing:
        extra = COMMAND_EXTRAS.get(args.command, "server")
        print(
            f"envpatrol {args.command}: this installation lacks its dependencies "
            f"({missing[args.command]}). Install them with: pip install 'envpatrol[{extra}]'",
            file=sys.stderr,
        )
        return 3
    setup_logging(getattr(args, "verbose", False))
    return runners[args.command](args)


def edge_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config", help="edge TOML file (see deploy/config/edge.toml)")
    parser.add_argument(
        "--record", metavar="FILE", help="record the drive to FILE (.jsonl.gz, docs/recording.md)"
    )

    def run(args: argparse.Namespace) -> int:
        from edge.agent import Agent
        from edge.config import load_edge_settings
        from edge.errors import SettingsError
        from edge.profile import ProfileError

        try:
            settings = load_edge_settings(args.config)
            if args.record:
                settings = replace(settings, record_path=args.record)
            agent = Agent(settings)
        except (SettingsError, ProfileError) as exc:
            print(f"envpatrol edge: {exc}", file=sys.stderr)
            return 2
        agent.run(stop_on_signals())
        return 0

    return run


if __name__ == "__main__":
    raise SystemExit(main())
