"""Keys limited to areas: which management grids a key sees, and what each route shows it.

Several sub-districts can share one deployment without seeing each other's cases. A key's scope
(`KeyScope`) names grids by id and sub-districts (a grid's `subdistrict`) by name, and
holds every grid named either way; a key without a scope (None) sees the whole deployment, as
every key made before scopes existed. A sub-district keeps covering the grids uploaded into it later,
so one key per sub-district needs no reissue when its grids are redrawn or added; grid ids suit
a key for one grid worker. The `envpatrol apikey` command's `--grid` and `--subdistrict` values
are parsed here.

Each route says what a scoped key gets from it, as the `x-envpatrol-scope` extension of its
OpenAPI operation (`visibility`):

- `grids`: only what lies in the key's grids: cases whose grid is one of them, grids, hotspots
  and sites whose centre one of them holds. Anything else is answered as if it did not exist
  (404, or left out of a list), so ids do not tell a scoped key what other areas hold.
- `deployment`: the same answer for every key: measurements, cells, vehicles and their tracks,
  analysis runs; no officer's data of an area.
- `unscoped`: a change to the whole deployment (grids, analysis runs): a scoped key gets a 403.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from api.officers.grids import Grid, grid_at
from api.text import text_problem
from edge.errors import EnvpatrolError

__all__ = [
    "EXTENSION",
    "MAX_GRID_ID",
    "MAX_NAME_CHARS",
    "GridView",
    "KeyScope",
    "ScopeError",
    "Visibility",
    "parse_grid_ids",
    "parse_subdistrict",
    "scope_of",
    "visibility",
    "visible_grids",
]

MAX_GRID_ID = 2**62  # as the API's grid id parameters
MAX_NAME_CHARS = 200
_GRID_ID = re.compile(r"[0-9]{1,19}")  # ASCII digits only: int() would take "٣" or "1_0"

Visibility = Literal["grids", "deployment", "unscoped"]
EXTENSION = "x-envpatrol-scope"


def visibility(kind: Visibility) -> dict[str, Any]:
    """A route's `openapi_extra`: what a key limited to grids gets from it (module docstring)."""
    return {EXTENSION: kind}


class ScopeError(EnvpatrolError, ValueError):
    """A scope that cannot be: `subject` is the option at fault (`--grid`, `--subdistrict`)."""


@dataclass(frozen=True, slots=True)
class KeyScope:
    """The grids a key is limited to: these ids, and every grid of these sub-districts."""

    grid_ids: frozenset[int] = frozenset()
    subdistricts: frozenset[str] = frozenset()

    def holds(self, grid: Grid) -> bool:
        return grid.id in self.grid_ids or (
            grid.subdistrict is not None and grid.subdistrict in self.subdistricts
        )

    def describe(self) -> str:
        """`grids 3, 7; sub-districts 双井街道`, or `nothing` for an empty scope."""
        parts = []
        if self.grid_ids:
            parts.append("grids " + ", ".join(str(i) for i in sorted(self.grid_ids)))
        if self.subdistricts:
            parts.append("sub-districts " + ", ".join(sorted(self.subdistricts)))
        return "; ".join(parts) or "nothing"


def visible_grids(known: Sequence[Grid], scope: KeyScope | None) -> list[Grid]:
    """The grids of `known` a key with `scope` sees (all of them without a scope)."""
    return list(known) if scope is None else [g for g in known if scope.holds(g)]


@dataclass(frozen=True, slots=True)
class GridView:
    """The grids a key with `scope` sees (`grids`), and which places."""

    grids: tuple[Grid, ...]
    scope: KeyScope | None

    @classmethod
    def of(cls, known: Sequence[Grid], scope: KeyScope | None) -> GridView:
        return cls(tuple(visible_grids(known, scope)), scope)

    def place(self, lon: float, lat: float) -> tuple[bool, Grid | None]:
        """Whether the key sees a place, and the grid it is tagged with.

        Without a scope every place is seen, tagged with the first grid holding it (or none).
        With one, only places inside its grids are seen, each tagged with one of them: where
        grids overlap, a grid of another area is never named to the key."""
        grid = grid_at(self.grids, lon, lat)
        return self.scope is None or grid is not None, grid

    def sees(self, lon: float, lat: float) -> bool:
        return self.place(lon, lat)[0]

    def get(self, grid_id: int) -> Grid | None:
        """The grid of that id if the key sees it; one it does not see is as one that is not."""
        return next((g for g in self.grids if g.id == grid_id), None)


def parse_grid_ids(values: Iterable[str]) -> frozenset[int]:
    """Grid ids from `--grid` values, each one id or several separated by commas (`3,7`)."""
    ids: set[int] = set()
    for value in values:
        for token in value.split(","):
            text = token.strip()
            if _GRID_ID.fullmatch(text) is None or not 1 <= int(text) <= MAX_GRID_ID:
                raise ScopeError(
                    "--grid", f"{token!r} in {value!r} is not a grid id (a whole number from 1)"
                )
            ids.add(int(text))
    return frozenset(ids)


def parse_subdistrict(value: str) -> str:
    """A sub-district's name from a `--subdistrict` value: one line, surrounding blanks dropped."""
    name = value.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise ScopeError("--subdistrict", f"{value!r}: a name has 1..{MAX_NAME_CHARS} characters")
    problem = text_problem(name)
    if problem is not None:
        raise ScopeError("--subdistrict", f"{value!r} {problem}")
    return name


def scope_of(grid_values: Iterable[str], subdistrict_values: Iterable[str]) -> KeyScope | None:
    """The scope the options name, or None (the whole deployment) when they name nothing."""
    grid_ids = parse_grid_ids(grid_values)
    names = frozenset(parse_subdistrict(v) for v in subdistrict_values)
    if not grid_ids and not names:
        return None
    return KeyScope(grid_ids, names)
