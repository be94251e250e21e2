"""Packaging: one version source, and extras that install what each host role's commands import.

The imports are read from the source with `ast` from each command's entry-point module through
every module of ours it reaches (lazy imports too), and checked against the distributions an
extra pulls in, dependencies of dependencies included, as this environment's metadata lists them.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires, version
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import edge
from edge.cli import COMMAND_EXTRAS

ROOT = Path(__file__).resolve().parents[2]
PROJECT: Mapping[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
    "project"
]
OURS = frozenset({"edge", "firmware_sim", "store", "ingest", "hotspots", "api", "demo"})
COMMANDS: Mapping[str, str] = PROJECT["entry-points"]["envpatrol.commands"]

# What a host of one role must not carry: the analysis stays off the ingest and API hosts, the
# web stack off the ingest host.
NOT_INSTALLED = {
    "edge": {"psycopg", "fastapi", "numpy", "h3", "orjson", "scipy"},
    "ingest": {"scipy", "esda", "libpysal", "numpy", "fastapi", "uvicorn"},
    "api": {"scipy", "esda", "libpysal"},
}


def _name(requirement: Requirement) -> str:
    return canonicalize_name(requirement.name)


def our_extra(extras: str) -> set[str]:
    """The distributions `envpatrol[extras]` installs, by canonical name."""
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [
        Requirement(text)
        for extra in ("", *extras.split(","))
        for text in (
            PROJECT["dependencies"] if extra == "" else PROJECT["optional-dependencies"][extra]
        )
    ]
    while pending:
        requirement = pending.pop()
        if _name(requirement) == "envpatrol":
            for extra in requirement.extras:
                pending.extend(map(Requirement, PROJECT["optional-dependencies"][extra]))
            continue
        key = (_name(requirement), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        pending.extend(_dependencies(requirement))
    return {name for name, _ in seen}


def _dependencies(requirement: Requirement) -> Iterator[Requirement]:
    try:
        listed = requires(requirement.name) or []
    except PackageNotFoundError:
        return
    for text in listed:
        dependency = Requirement(text)
        marker = dependency.marker
        # Markers are judged for this interpreter, with the extras the requirement asks for.
        wanted = ("", *requirement.extras)
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in wanted):
            yield dependency


@cache
def _import_names() -> dict[str, set[str]]:
    """Top-level import names by canonical distribution name."""
    names: dict[str, set[str]] = {}
    for module, distributions in packages_distributions().items():
        for distribution in distributions:
            names.setdefault(canonicalize_name(distribution), set()).add(module)
    return names


def importable(extras: str) -> set[str]:
    return {name for dist in our_extra(extras) for name in _import_names().get(dist, ())}


def _module_path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    # Imports under `if TYPE_CHECKING:` never run.
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def third_party_imports(start: str) -> set[str]:
    """Top-level names of everything outside the standard library that `start` may import, through
    any module of ours it reaches."""
    seen: set[str] = set()
    pending = [start]
    outside: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        pending.extend(".".join(parts[:n]) for n in range(1, len(parts)))
        path = _module_path(module)
        if path is None:
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            if top in OURS:
                pending.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                outside.add(top)
    return outside


def test_the_version_comes_from_the_package_metadata() -> None:
    assert edge.__version__ == version("envpatrol") == PROJECT["version"]


def test_a_checkout_never_installed_reads_the_project_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(edge, "version", not_installed)
    assert edge._read_version() == PROJECT["version"]


def test_no_module_sets_a_version_of_its_own() -> None:
    assigned = sorted(
        str(path.relative_to(ROOT))
        for package in sorted(OURS)
        for path in (ROOT / package).rglob("*.py")
        if "__version__ =" in path.read_text(encoding="utf-8")
    )
    assert assigned == ["edge/__init__.py"]


def test_every_command_names_an_extra_that_exists() -> None:
    extras = set(PROJECT["optional-dependencies"])
    assert set(COMMAND_EXTRAS) == set(COMMANDS)
    for extra in COMMAND_EXTRAS.values():
        assert set(extra.split(",")) <= extras


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_commands_extra_installs_what_it_imports(command: str) -> None:
    module = COMMANDS[command].split(":")[0]
    missing = third_party_imports(module) - importable(COMMAND_EXTRAS[command])
    assert missing == set(), f"envpatrol[{COMMAND_EXTRAS[command]}] lacks {sorted(missing)}"


@pytest.mark.parametrize("role", sorted(NOT_INSTALLED))
def test_a_role_installs_nothing_of_the_others(role: str) -> None:
    assert importable(role) & NOT_INSTALLED[role] == set()


def test_server_is_every_server_role() -> None:
    roles = {"ingest", "api", "hotspots"}
    assert our_extra("server") == our_extra(",".join(sorted(roles)))
