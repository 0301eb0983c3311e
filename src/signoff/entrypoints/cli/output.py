"""What every command shares: the two consoles, the exit codes, and one-line failures.

Exit codes, one rule for every command: 0 done (approved, valid, ran); 1 refused (a
denial, or the server said no: not allowed, already voted, not in a state for it: HTTP
403 and 409); 2 a mistake in the call (400, 404, 422) or a server or network error; 3
timed out or cancelled. Errors are one line on stderr, never a stack trace.

Kept light on purpose (no HTTP client, no settings, no database): ``signoff --help``
imports this and nothing heavier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, TypeVar

import typer
from rich.console import Console

from signoff.domain.errors import PolicyError, SignoffError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_OK, EXIT_DENIED, EXIT_ERROR, EXIT_TIMEOUT = 0, 1, 2, 3
T = TypeVar("T")


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    err.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


def guarded(fn: Callable[[], T]) -> T:
    """``fn()``, with Signoff's errors turned into one-line messages and exit code 2."""
    try:
        return fn()
    except PolicyError as exc:
        for p in exc.problems:
            err.print(str(p), markup=False, highlight=False)
        raise typer.Exit(EXIT_ERROR) from None
    except SignoffError as exc:
        fail(exc.detail)


def parse_pairs(items: list[str] | None, what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"{what} must look like key=value, got {item!r}")
        result[key] = value
    return result
