"""The root of envpatrol's errors: what is at fault (`subject`) and what is wrong with it (`problem`).

Every error class of the tree derives from `EnvpatrolError`, so a caller can catch them all at one
place and log or show them in one shape, `subject: problem`. Classes that had a built-in base
(`ValueError`, `LookupError`, `RuntimeError`) keep it as their second base, so `except ValueError`
still catches them. This module is the edge's, which every package may import: it uses the
standard library only.
"""

from __future__ import annotations

__all__ = ["EnvpatrolError", "SettingsError"]


class EnvpatrolError(Exception):
    """An error of ours: `subject` names what is at fault (a setting, a parameter, a file, a
    field), `problem` says what is wrong with it. Subclasses may carry more data beside them."""

    def __init__(self, subject: str, problem: str) -> None:
        super().__init__(subject, problem)
        self.subject = subject
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.subject}: {self.problem}"


class SettingsError(EnvpatrolError, ValueError):
    """A setting that cannot be used; `subject` is its key (`mqtt.port`, `min_passes`)."""
