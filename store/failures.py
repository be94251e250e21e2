"""Database failures as the commands report them: one line, no traceback.

A command run by an operator (`envpatrol migrate`, `rebuild`, `analyse`) that cannot reach the
database, or that the database refuses, prints what the driver says in one line and exits with
a status; a service's periodic job logs the same line and tries again.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeGuard

import psycopg

Runner = Callable[..., int]


def describe(exc: psycopg.Error) -> str:
    """The driver's message on one line: 'connection failed: ... Connection refused'."""
    return " ".join(str(exc).split()) or type(exc).__name__


def is_unreachable(exc: BaseException) -> TypeGuard[psycopg.OperationalError]:
    """A failure to reach or keep the server rather than a refused statement."""
    return isinstance(exc, psycopg.OperationalError)


def reported(command: str) -> Callable[[Runner], Runner]:
    """Wrap a command's run function: a database error becomes one line on stderr and exit
    status 1 (unreachable) or 2 (refused)."""

    def wrap(run: Runner) -> Runner:
        @functools.wraps(run)
        def guarded(*args: object, **kwargs: object) -> int:
            try:
                return run(*args, **kwargs)
            except psycopg.Error as exc:
                kind = "database unreachable" if is_unreachable(exc) else "database error"
                print(f"envpatrol {command}: {kind}: {describe(exc)}", file=sys.stderr)
                return 1 if is_unreachable(exc) else 2

        return guarded

    return wrap
