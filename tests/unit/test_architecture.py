"""The import graph of the whole tree: data flows one way and no module imports itself back.

Read from the source with `ast`, so every import counts, the lazy ones inside functions too.
docs/architecture.md explains the layers.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What each top-level package may import of ours, besides itself.
ALLOWED: Mapping[str, frozenset[str]] = {
    "edge": frozenset(),
    "firmware_sim": frozenset({"edge"}),
    "store": frozenset({"edge"}),
    "ingest": frozenset({"edge", "store"}),
    "hotspots": frozenset({"edge", "store", "ingest"}),
    "api": frozenset({"edge", "store", "hotspots"}),
    "demo": frozenset({"edge", "firmware_sim", "store", "ingest", "hotspots", "api"}),
    "bench": frozenset({"edge", "firmware_sim", "store", "ingest", "hotspots", "api", "demo"}),
    "tests": frozenset({"edge", "firmware_sim", "store", "ingest", "hotspots", "api", "demo"}),
}
OURS = frozenset(ALLOWED)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> Iterator[Path]:
    for package in sorted(OURS):
        yield from sorted((ROOT / package).rglob("*.py"))


def imported(path: Path, module: str) -> set[str]:
    """The modules of ours that `path` imports, as dotted names (a name imported from a package
    counts as its submodule when one exists, else as the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in OURS and name != module}


def graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in sources()}
    edges: dict[str, set[str]] = {}
    for module, path in paths.items():
        # Only names that are modules of the tree: `from a import b` where b is a function
        # stands for `a`, which the ImportFrom's module already names.
        edges[module] = {name for name in imported(path, module) if name in paths}
    return edges


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_every_package_imports_only_the_packages_before_it() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        if target.split(".")[0] != module.split(".")[0]
        and target.split(".")[0] not in ALLOWED[module.split(".")[0]]
    )
    assert wrong == []


def test_no_module_imports_itself_back() -> None:
    assert cycles(graph()) == []


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"a"}}, []),
    ],
)
def test_cycles_finds_strongly_connected_components(
    edges: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert cycles(edges) == expected
