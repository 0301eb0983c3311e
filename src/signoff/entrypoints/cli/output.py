"""What every command shares: the two consoles, the exit codes, and one-line failures.

Exit codes, one rule for every command: 0 done (approved, valid, ran); 1 refused (a
denial, or the server said no: not allowed, already voted, not in a state for it: HTTP
403 and 409); 2 a mistake in the call (400, 404, 422) or a server or network error; 3
timed out or cancelled; 130 interrupted (Ctrl-C). Errors are one line on stderr, never a
stack trace.

In a terminal, lines longer than its width wrap at spaces (``say`` indents what follows
the first line), so a word or an id is never cut where the terminal ends; piped, lines
are written whole, unwrapped, without colour or spinners.

Kept light on purpose (no HTTP client, no settings, no database): ``signoff --help``
imports this and nothing heavier.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import NoReturn, TypeVar

import typer
from rich.cells import cell_len
from rich.console import Console

from signoff.domain.errors import PolicyError, SignoffError

out = Console()
err = Console(stderr=True)
for _console in (out, err):
    # piped: a line is written whole (a reader or a script splits it, not Rich at 80)
    _console.soft_wrap = not _console.is_terminal

EXIT_OK, EXIT_DENIED, EXIT_ERROR, EXIT_TIMEOUT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report a process ended by SIGINT
T = TypeVar("T")


def say(text: str, console: Console = out, hang: int = 4) -> None:
    """Plain text (no markup), a line at a time. In a terminal narrower than a line, the
    line wraps at spaces and what follows its first row is indented by ``hang`` more than
    it; a word longer than the width (an id, a URL) is kept whole."""
    if console.soft_wrap:  # piped: as it is (Rich would expand tabs, and a Ctrl-C in
        console.file.write(text + "\n")  # its print could leave the line to print twice)
        console.file.flush()
        return
    width = console.width
    for line in text.split("\n"):
        if cell_len(line) <= width:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
            continue
        lead = " " * (len(line) - len(line.lstrip(" ")))
        for row in textwrap.wrap(
            line,
            width,
            subsequent_indent=lead + " " * hang,
            break_long_words=False,
            break_on_hyphens=False,
        ):
            console.print(row, markup=False, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    say(f"error: {message}", err, hang=2)
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
