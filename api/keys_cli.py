"""`envpatrol apikey`: create, list and revoke the API's keys (through the admin database role)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import psycopg

from api import keys
from api.settings import load_api_settings
from edge.errors import SettingsError
from store.failures import reported


def apikey_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config", help="API TOML file (see deploy/config/api.toml)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a key and print it (shown only once)")
    create.add_argument("--name", required=True, help="who or what holds the key")
    create.add_argument("--role", choices=keys.ROLES, default="read")
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke a key by its key id")
    revoke.add_argument("key_id")
    for action in (create, listing, revoke):
        # after the action too (`apikey create --config X`), as the docs write it
        action.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    @reported("apikey")
    def run(args: argparse.Namespace) -> int:
        try:
            settings = load_api_settings(args.config)
        except SettingsError as exc:
            print(f"envpatrol apikey: {exc}", file=sys.stderr)
            return 2
        try:
            with psycopg.connect(settings.writer_url, autocommit=True) as conn:
                if args.action == "create":
                    new = keys.create(conn, args.name, args.role)
                    print(
                        f"key id: {new.key_id}  role: {new.role}  name: {new.name}", file=sys.stderr
                    )
                    print(
                        "Store this key now; it is not kept and cannot be shown again:",
                        file=sys.stderr,
                    )
                    print(new.key)
                elif args.action == "list":
                    for key in keys.listing(conn):
                        revoked = (
                            ""
                            if key.revoked_at is None
                            else f"  revoked {key.revoked_at:%Y-%m-%d %H:%M}"
                        )
                        print(
                            f"{key.key_id}  {key.role:5}  {key.created_at:%Y-%m-%d}  {key.name}{revoked}"
                        )
                elif not keys.revoke(conn, args.key_id):
                    print(f"envpatrol apikey: no unrevoked key {args.key_id}", file=sys.stderr)
                    return 1
        except keys.ApiKeyError as exc:
            print(f"envpatrol apikey: {exc}", file=sys.stderr)
            return 2
        return 0

    return run
