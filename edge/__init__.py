"""envpatrol edge: the agent that runs on a patrol vehicle, and the wire contract it speaks.

Everything in this package installs and runs with the vehicle's small dependency set (pyserial,
pynmea2, paho-mqtt); nothing here may import a server dependency.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["__version__"]

_DISTRIBUTION = "envpatrol"
_UNKNOWN = "0+unknown"


def _read_version() -> str:
    """The installed distribution's version: `version` in pyproject.toml is its only source."""
    try:
        return version(_DISTRIBUTION)
    except PackageNotFoundError:
        pass
    # Run from a checkout that was never installed (`python -m edge.cli` beside the sources): the
    # project file next to the package says the same thing the metadata would.
    import tomllib

    project_file = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        project = tomllib.loads(project_file.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return _UNKNOWN
    if project.get("name") != _DISTRIBUTION or not isinstance(project.get("version"), str):
        return _UNKNOWN
    return str(project["version"])


__version__ = _read_version()
