"""API keys: made once, shown once, stored only as a hash.

A key reads `ep_<key id>_<secret>`: the key id (8 hex digits) is public and names the key in
logs, listings and rate limits; the secret is 32 random bytes (URL-safe base64). The database
keeps the key id, the holder's name, the role and the sha256 of the whole key, so a leaked table
gives no usable key. sha256 without salt or stretching is right here: the secret has 256 bits of
entropy, so there is nothing to guess, unlike a password.

Roles: `read` may use every GET route; `admin` may also write the officer-owned tables (grids,
cases, keys). A key may be limited to some management grids (`api.scopes.KeyScope`: grid ids
and sub-districts); without a scope it sees the whole deployment. Keys are made, and their
scopes set, only here, through the admin database role (`envpatrol apikey`): no API route
makes or widens a key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from api.scopes import KeyScope
from edge.errors import EnvpatrolError

Role = Literal["read", "admin"]
ROLES: tuple[Role, ...] = ("read", "admin")
_KEY = re.compile(r"^ep_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


class ApiKeyError(EnvpatrolError, ValueError):
    """A key operation that cannot be done; `subject` is the input at fault (`role`, `name`,
    `--grid`, `--subdistrict`)."""


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    name: str
    role: Role
    key: str  # the only time the whole key exists outside its holder's hands
    scope: KeyScope | None = None  # None: the whole deployment


@dataclass(frozen=True, slots=True)
class StoredKey:
    key_id: str
    name: str
    role: Role
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None
    scope: KeyScope | None = None  # None: the whole deployment


def key_id_of(key: str) -> str | None:
    """The key id of a well-formed key, else None (without looking anything up)."""
    match = _KEY.match(key)
    return None if match is None else match.group(1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def matches(key: str, stored: StoredKey) -> bool:
    """Whether `key` is the one `stored` was made from, in constant time."""
    return hmac.compare_digest(hash_key(key), stored.secret_hash)


def generate(name: str, role: str, scope: KeyScope | None = None) -> NewKey:
    if role not in ROLES:
        raise ApiKeyError("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    name = name.strip()
    if not name or len(name) > 200:
        raise ApiKeyError("name", "must be 1..200 characters")
    key_id = secrets.token_hex(4)
    key = f"ep_{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key_id, name, role, key, scope)  # type: ignore[arg-type]


Conn = psycopg.Connection[Any]


def check_scope(conn: Conn, scope: KeyScope) -> None:
    """Refuse a scope naming a grid or a sub-district the deployment does not have (yet): a
    typing error would otherwise make a key that silently sees nothing."""
    ids = sorted(scope.grid_ids)
    found = {
        int(row[0])
        for row in conn.execute("SELECT id FROM management_grid WHERE id = ANY(%s)", (ids,))
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise ApiKeyError(
            "--grid",
            f"no grid {', '.join(map(str, missing))}; `envpatrol apikey grids` lists them",
        )
    names = sorted(scope.subdistricts)
    known = {
        str(row[0])
        for row in conn.execute(
            "SELECT DISTINCT subdistrict FROM management_grid WHERE subdistrict = ANY(%s)",
            (names,),
        )
    }
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ApiKeyError(
            "--subdistrict",
            f"no grid is in sub-district {', '.join(map(repr, unknown))}; grids name theirs "
            "in the `subdistrict` property when uploaded (`envpatrol apikey grids` lists them)",
        )


def create(conn: Conn, name: str, role: str, scope: KeyScope | None = None) -> NewKey:
    """Store a new key (its hash) and return it; the caller shows it once. `scope` limits it
    to some grids (checked to exist); None: the whole deployment."""
    new = generate(name, role, scope)
    with conn.transaction():
        if scope is not None:
            check_scope(conn, scope)
        conn.execute(
            "INSERT INTO api_key (key_id, name, role, secret_hash, scope_grids,"
            " scope_subdistricts) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                new.key_id,
                new.name,
                new.role,
                hash_key(new.key),
                None if scope is None else sorted(scope.grid_ids),
                None if scope is None else sorted(scope.subdistricts),
            ),
        )
    return new


_COLUMNS = (
    "key_id, name, role, secret_hash, created_at, revoked_at, scope_grids, scope_subdistricts"
)


def _stored(row: dict[str, Any]) -> StoredKey:
    grid_ids, names = row.pop("scope_grids"), row.pop("scope_subdistricts")
    scope = (
        None
        if grid_ids is None or names is None
        else KeyScope(frozenset(int(i) for i in grid_ids), frozenset(names))
    )
    return StoredKey(**row, scope=scope)


def find(conn: Conn, key_id: str) -> StoredKey | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_COLUMNS} FROM api_key WHERE key_id = %s", (key_id,)).fetchone()
    return None if row is None else _stored(row)


def listing(conn: Conn) -> list[StoredKey]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_COLUMNS} FROM api_key ORDER BY created_at, key_id").fetchall()
    return [_stored(row) for row in rows]


def revoke(conn: Conn, key_id: str) -> bool:
    """Revoke a key; False when there is no such unrevoked key."""
    cur = conn.execute(
        "UPDATE api_key SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL",
        (key_id,),
    )
    return cur.rowcount == 1
