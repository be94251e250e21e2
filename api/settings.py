"""The API's settings: one TOML file plus environment overrides, checked at start-up.

- `[database] url`: libpq URL of the read-only role; ENVPATROL_DATABASE_URL replaces it.
- `[database] statement_timeout_s` (30): a longer query is cancelled and answered with a 503.
- `[database] connect_timeout_s` (5).
- `[api] host` ("127.0.0.1") and `port` (8080): where to listen.

Unknown keys are refused, so a typo cannot go unnoticed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.config import load_toml
from edge.mqtt import SettingsError

DATABASE_URL_ENV = "ENVPATROL_DATABASE_URL"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8080
    statement_timeout_s: float = 30.0
    connect_timeout_s: int = 5

    def __post_init__(self) -> None:
        if not self.database_url:
            raise SettingsError(
                "database.url", f"required: set it in the file or in {DATABASE_URL_ENV}"
            )
        if not 0 <= self.port <= 65535:
            raise SettingsError("api.port", f"must be 0..65535, got {self.port}")
        if not (math.isfinite(self.statement_timeout_s) and self.statement_timeout_s > 0):
            raise SettingsError("database.statement_timeout_s", "must be a positive number")
        if self.connect_timeout_s < 1:
            raise SettingsError("database.connect_timeout_s", "must be at least 1")


_TYPES: dict[str, dict[str, type]] = {
    "database": {"url": str, "statement_timeout_s": float, "connect_timeout_s": int},
    "api": {"host": str, "port": int},
}


def _checked(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for section, table in doc.items():
        if section not in _TYPES:
            raise SettingsError(section, "unknown section")
        if not isinstance(table, dict):
            raise SettingsError(section, "must be a table")
        out[section] = {}
        for key, raw in table.items():
            want = _TYPES[section].get(key)
            if want is None:
                raise SettingsError(f"{section}.{key}", "unknown setting")
            value = float(raw) if want is float and type(raw) is int else raw
            if not isinstance(value, want) or isinstance(value, bool):
                raise SettingsError(f"{section}.{key}", f"must be {want.__name__}, got {raw!r}")
            out[section][key] = value
    return out


def load_api_settings(path: str | None, environ: Mapping[str, str] = os.environ) -> ApiSettings:
    """Settings from a TOML file (optional) and ENVPATROL_DATABASE_URL (which wins)."""
    doc = load_toml(path)
    sections = _checked(doc)
    database = sections.get("database", {})
    api = sections.get("api", {})
    url = environ.get(DATABASE_URL_ENV) or database.pop("url", "")
    database.pop("url", None)
    return ApiSettings(
        database_url=url,
        host=api.get("host", "127.0.0.1"),
        port=api.get("port", 8080),
        **database,
    )
