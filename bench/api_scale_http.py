"""Timing the API's routes over HTTP against a running server, with parameters fitted to the
server's own OpenAPI document so that routes whose parameters change are still measured (a
parameter the route no longer has is dropped and reported; a route that is missing, or that
requires a parameter the benchmark does not know, is skipped with the reason)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    path: str  # OpenAPI path template, e.g. /v1/cells/{cell}
    params: Mapping[str, Any] = field(default_factory=dict)
    path_params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fitted:
    url: str | None  # None: skipped
    params: dict[str, Any]
    dropped: tuple[str, ...]
    problem: str | None = None


def fit(openapi: Mapping[str, Any], case: Case) -> Fitted:
    """The case's request as the server's OpenAPI document allows it. Pure."""
    operation = openapi.get("paths", {}).get(case.path, {}).get("get")
    if operation is None:
        return Fitted(None, {}, (), f"no GET {case.path} in /openapi.json")
    declared = {p["name"]: p for p in operation.get("parameters", []) if "name" in p}
    query = {n for n, p in declared.items() if p.get("in") == "query"}
    kept = {k: v for k, v in case.params.items() if k in query}
    dropped = tuple(sorted(set(case.params) - query))
    for name, p in declared.items():
        if p.get("required") and name not in kept and name not in case.path_params:
            return Fitted(
                None, kept, dropped, f"requires {name!r}, which the benchmark does not set"
            )
    url = case.path
    for name, value in case.path_params.items():
        url = url.replace("{" + name + "}", value)
    if "{" in url:
        return Fitted(None, kept, dropped, f"path parameter of {case.path} unknown")
    return Fitted(url, kept, dropped)


def enum_of(openapi: Mapping[str, Any], path: str, parameter: str) -> list[str]:
    """The allowed values of a query parameter (an enum), or [] when it has none."""
    operation = openapi.get("paths", {}).get(path, {}).get("get") or {}
    for p in operation.get("parameters", []):
        if p.get("name") == parameter:
            schema = p.get("schema", {})
            for option in [schema, *schema.get("anyOf", []), *schema.get("allOf", [])]:
                if "enum" in option:
                    return [str(v) for v in option["enum"]]
    return []


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted-or-not samples."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass(frozen=True, slots=True)
class Timing:
    name: str
    url: str | None
    params: dict[str, Any]
    dropped: tuple[str, ...]
    samples_ms: list[float]
    status: int | None
    size_bytes: int
    problem: str | None

    @property
    def p50(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None

    @property
    def p95(self) -> float | None:
        return percentile(self.samples_ms, 0.95) if self.samples_ms else None

    @property
    def max(self) -> float | None:
        return max(self.samples_ms) if self.samples_ms else None


def measure(
    client: httpx.Client,
    openapi: Mapping[str, Any],
    case: Case,
    requests: int,
    warmup: int,
    slow_ms: float = 10_000.0,
) -> Timing:
    """`warmup` untimed requests, then `requests` timed ones (whole response read). The first
    non-200 answer ends the case and is reported; so does a request slower than `slow_ms`
    (kept as the case's only sample: repeating it would take the whole benchmark's time)."""
    fitted = fit(openapi, case)
    if fitted.url is None:
        return Timing(case.name, None, fitted.params, fitted.dropped, [], None, 0, fitted.problem)
    samples: list[float] = []
    size = 0
    for i in range(warmup + requests):
        begin = time.perf_counter()
        response = client.get(fitted.url, params=fitted.params)
        elapsed = (time.perf_counter() - begin) * 1000
        if response.status_code != 200:
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
            return Timing(
                case.name, fitted.url, fitted.params, fitted.dropped, samples,
                response.status_code, size, problem,
            )  # fmt: skip
        size = len(response.content)
        if elapsed > slow_ms:
            problem = f"a request took {elapsed / 1000:.1f} s: not repeated"
            return Timing(
                case.name, fitted.url, fitted.params, fitted.dropped, [elapsed], 200, size, problem
            )
        if i >= warmup:
            samples.append(elapsed)
    return Timing(case.name, fitted.url, fitted.params, fitted.dropped, samples, 200, size, None)


def table(timings: list[Timing]) -> str:
    lines = [
        "| route | p50 ms | p95 ms | max ms | n | bytes | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in timings:
        note = t.problem or ""
        if t.dropped:
            note = (note + "; " if note else "") + "dropped: " + ", ".join(t.dropped)

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        lines.append(
            f"| {t.name} | {ms(t.p50)} | {ms(t.p95)} | {ms(t.max)} | {len(t.samples_ms)}"
            f" | {t.size_bytes:,} | {note} |"
        )
    return "\n".join(lines)
