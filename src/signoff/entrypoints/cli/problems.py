"""What the CLI says when the API answers with a problem: in the terms of the command
line (the option a field came from, the variable to set), not of HTTP.

- no token, or one the server does not know: ``signoff login``, or which variable, and
  who makes tokens;
- a field the server refused: the option it came from (``body.context.risk`` is
  ``--risk``), with the server's reason;
- a server that cannot be reached: the URL tried, and where it comes from.

Anything else is the server's own one-line ``detail``.
"""

from __future__ import annotations

import re

from signoff.entrypoints.cli.client import ApiError, ClientSettings

# The options of the remote commands, by the field of the API body or query they fill.
# A field under one of these (context.labels.team, action.params.sql) is that option's.
FLAGS: dict[str, str] = {
    "action.type": "--type",
    "action.target": "--target",
    "action.params.argv": "--arg",
    "action.params": "--param",
    "params.argv": "--arg",
    "params": "--param",
    "reason": "--reason",
    "ticket": "--ticket",
    "context.links": "--link",
    "context.labels": "--label",
    "context.risk": "--risk",
    "comment": "--comment",
    "status": "--status",
    "requester": "--requester",
    "limit": "--limit",
}
MAKE_TOKEN = "an admin makes one with: signoff token create --user NAME"
_LOCATIONS = ("body.", "query.", "path.", "header.")
_CHOICES = re.compile(r"Input should be ((?:'[^']*'(?:, | or )?)+)$")


def flag_of(field: str) -> tuple[str, str] | None:
    """The option a field came from and the rest of the field's path after it:
    ``context.labels.team`` -> ``("--label", "team")``; None when no option fills it."""
    for prefix in _LOCATIONS:
        field = field.removeprefix(prefix)
    parts = field.split(".")
    for n in range(len(parts), 0, -1):
        flag = FLAGS.get(".".join(parts[:n]))
        if flag:
            return flag, ".".join(parts[n:])
    return None


def _reason(message: str) -> str:
    """A validation message as the rest of a sentence: "must be one of low, high"."""
    choices = _CHOICES.match(message)
    if choices:
        return "must be one of " + ", ".join(re.findall(r"'([^']*)'", choices.group(1)))
    if message[:1].isupper() and message[1:2].islower():
        return message[0].lower() + message[1:]
    return message


def said(exc: ApiError, settings: ClientSettings) -> str:
    """The one line the CLI prints for ``exc`` (after ``error: ``)."""
    if exc.status == 0:
        return f"{exc.detail} (is the server running? SIGNOFF_URL says where it is)"
    if exc.status == 401:
        if settings.logged_in:
            return f"{settings.url} refused your login ({exc.detail}): run signoff login"
        if not settings.token:
            return f"not logged in: run signoff login, or set SIGNOFF_TOKEN ({MAKE_TOKEN})"
        return f"SIGNOFF_TOKEN is not a valid API token on {settings.url} ({MAKE_TOKEN})"
    errors = exc.body.get("errors")
    if exc.code == "validation-error" and isinstance(errors, list) and errors:
        first = errors[0]
        found = flag_of(str(first.get("field", "")))
        if found is None:
            return exc.detail
        flag, rest = found
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        where = f"{flag} {rest}" if rest else flag
        return f"{where}: {_reason(str(first.get('message', '')))}{more}"
    field = exc.body.get("field")
    found = flag_of(field) if isinstance(field, str) and field else None
    return f"{found[0]}: {exc.detail}" if found else exc.detail
