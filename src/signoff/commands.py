"""The command lines Signoff prints for people to run, made in one place.

Mail, Slack, Teams, Apprise and the CLI's own hints print commands ("signoff show ID",
"signoff execute ID", the redeem line of a grant); each is built here, from the same
names the CLI registers its commands under (``entrypoints/cli/main.py`` uses
``NAMES``), complete (every parameter the grant is bound to, quoted for a POSIX shell)
and runnable as printed. A test copies them out of captured messages and runs them.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

PROGRAM = "signoff"

# The CLI's command paths, by what they do.
SHOW = ("show",)
APPROVE = ("approve",)
DENY = ("deny",)
CANCEL = ("cancel",)
EXECUTE = ("execute",)
GRANT_TOKEN = ("grant", "token")
GRANT_REDEEM = ("grant", "redeem")
NAMES: tuple[tuple[str, ...], ...] = (
    SHOW,
    APPROVE,
    DENY,
    CANCEL,
    EXECUTE,
    GRANT_TOKEN,
    GRANT_REDEEM,
)

# A command longer than this is not printed in a message: the action is shown instead.
MAX_LINE = 4000


def line(path: tuple[str, ...], *args: str) -> str:
    return shlex.join([PROGRAM, *path, *args])


def show(request_id: str) -> str:
    return line(SHOW, request_id)


def approve(request_id: str) -> str:
    return line(APPROVE, request_id)


def deny(request_id: str) -> str:
    return line(DENY, request_id, "--comment", "why")


def cancel(request_id: str) -> str:
    return line(CANCEL, request_id)


def execute(request_id: str) -> str:
    return line(EXECUTE, request_id)


def grant_token(request_id: str) -> str:
    return line(GRANT_TOKEN, request_id)


def action_args(action_type: str, target: str, params: Mapping[str, Any]) -> list[str] | None:
    """The options that name exactly this action (``--type``, ``--target``, ``--param``
    and ``--arg``), or None when the CLI cannot state it (a value that is not text)."""
    args = ["--type", action_type, "--target", target]
    for key, value in params.items():
        if key == "argv" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            for v in value:
                args += ["--arg", v]
        elif isinstance(value, str) and "=" not in key:
            args += ["--param", f"{key}={value}"]
        else:
            return None
    return args


def redeem(request_id: str, action_type: str, target: str, params: Mapping[str, Any]) -> str | None:
    """The line that redeems the request's grant for exactly its action, fetching the
    token with ``signoff grant token`` (a token is never printed in a message)."""
    args = action_args(action_type, target, params)
    if args is None:
        return None
    token = f'"$({grant_token(request_id)})"'
    text = f"{PROGRAM} {' '.join(GRANT_REDEEM)} {token} {shlex.join(args)}"
    return text if len(text) <= MAX_LINE else None
