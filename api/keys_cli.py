"""`envpatrol apikey`: create, list and revoke the API's keys (through the admin database role),
and list the management grids a key can be limited to."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import psycopg

from api import keys
from api.officers import grids
from api.scopes import KeyScope, ScopeError, scope_of
from api.settings import ApiSettings, load_api_settings
from edge.errors import SettingsError
from store.failures import reported


def apikey_command(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    parser.add_argument("--config", help="API TOML file (see deploy/config/api.toml)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a key and print it (shown only once)")
    create.add_argument("--name", required=True, help="who or what holds the key")
    create.add_argument("--role", choices=keys.ROLES, default="read")
    create.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="ID",
        help="limit the key to this management grid (repeat, or 3,7); see `apikey grids`",
    )
    create.add_argument(
        "--subdistrict",
        action="append",
        default=[],
        metavar="NAME",
        help="limit the key to every grid of this sub-district, also grids uploaded later "
        "(repeat for several); without --grid or --subdistrict: the whole deployment",
    )
    listing = actions.add_parser("list", help="list keys and their scopes (never the keys)")
    revoke = actions.add_parser("revoke", help="revoke a key by its key id")
    revoke.add_argument("key_id")
    grid_list = actions.add_parser("grids", help="list the management grids keys can be limited to")
    for action in (create, listing, revoke, grid_list):
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
            scope = scope_of(args.grid, args.subdistrict) if args.action == "create" else None
        except ScopeError as exc:
            print(f"envpatrol apikey: {exc}", file=sys.stderr)
            return 2
        try:
            with psycopg.connect(settings.writer_url, autocommit=True) as conn:
                if args.action == "create":
                    _create(conn, settings, args.name, args.role, scope)
                elif args.action == "list":
                    for key in keys.listing(conn):
                        print(_key_line(key))
                elif args.action == "grids":
                    for grid in grids.all_grids(conn):
                        print(f"{grid.id:>6}  {grid.subdistrict or '-'}  {grid.name}")
                elif not keys.revoke(conn, args.key_id):
                    print(f"envpatrol apikey: no unrevoked key {args.key_id}", file=sys.stderr)
                    return 1
        except keys.ApiKeyError as exc:
            print(f"envpatrol apikey: {exc}", file=sys.stderr)
            return 2
        return 0

    return run


def _create(
    conn: keys.Conn, settings: ApiSettings, name: str, role: str, scope: KeyScope | None
) -> None:
    new = keys.create(conn, name, role, scope)
    print(
        f"key id: {new.key_id}  role: {new.role}  scope: {_scope_text(new.scope)}"
        f"  name: {new.name}",
        file=sys.stderr,
    )
    if scope is not None and not settings.read_key_required:
        print(
            "warning: this configuration lets callers without a key read ([auth] "
            "read_key_required = false), and they read every area: set it to true to keep "
            "areas apart",
            file=sys.stderr,
        )
    print("Store this key now; it is not kept and cannot be shown again:", file=sys.stderr)
    print(new.key)


def _scope_text(scope: KeyScope | None) -> str:
    return "whole deployment" if scope is None else scope.describe()


def _key_line(key: keys.StoredKey) -> str:
    revoked = "" if key.revoked_at is None else f"  revoked {key.revoked_at:%Y-%m-%d %H:%M}"
    return (
        f"{key.key_id}  {key.role:5}  {key.created_at:%Y-%m-%d}  {key.name}"
        f"  [{_scope_text(key.scope)}]{revoked}"
    )
