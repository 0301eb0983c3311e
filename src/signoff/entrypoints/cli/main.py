"""The ``signoff`` command line: the Typer app, assembled from two kinds of command.

- ``local.py``: commands that build the application from the server settings (with
  migrations) or read the policy files: serve, worker, db, token, policy, outbox, audit.
- ``remote.py``: commands that talk to a server over HTTP: request, run, execute,
  approve, deny, cancel, inbox, list, show, grant.

``output.py`` holds what they share (consoles, exit codes, ``fail``), ``options.py`` the
options several commands take. Exit codes, one rule for every command: 0 done; 1
refused (a denial, HTTP 403 or 409); 2 a mistake in the call or a server or network
error; 3 timed out or cancelled; 130 interrupted. Errors are one line on stderr, never
a stack trace; a usage error too (``usage_said``).

Help is Click's plain layout (Typer's Rich panels print a ``<bool>`` type beside every
flag); each command's help ends with what it connects to (``WHERE``).

Heavy modules (the HTTP client, settings, the database, the web framework) are imported
inside the commands that use them, so ``signoff --help`` stays quick.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import typer
import typer.core

from signoff.entrypoints.cli import flow, local, mcp, remote
from signoff.entrypoints.cli.output import EXIT_INTERRUPTED, err, say

REMOTE = (
    "Connects to the server at SIGNOFF_URL (default http://127.0.0.1:8000) with the API "
    "token in SIGNOFF_TOKEN (an admin makes one with: signoff token create --user NAME), "
    "else as you logged in with signoff login."
)
LOCAL = (
    "Works on this installation directly, not through a server: the database at "
    "SIGNOFF_DATABASE_URL (default: SQLite in SIGNOFF_DATA_DIR, ./.signoff) and the "
    "server's other settings (docs/configuration.md)."
)
SERVE = (
    "Listens on SIGNOFF_HOST:SIGNOFF_PORT (default 127.0.0.1:8000); stores in "
    "SIGNOFF_DATABASE_URL (default: SQLite in SIGNOFF_DATA_DIR, ./.signoff); every "
    "setting: docs/configuration.md."
)
FILES = (
    "Reads the policy folder (SIGNOFF_POLICIES_DIR) and users (SIGNOFF_USERS_FILE) on "
    "this machine; connects to nothing."
)


class QuickHelpGroup(typer.core.TyperGroup):
    """A group whose ``--help`` flag is False, not None, when absent. Typer converts
    every parameter value through a pydantic TypeAdapter except a flag that is already a
    bool; a group's absent ``--help`` (None) was converted on every subcommand, which
    imported pydantic (about 60 ms) just to print ``signoff inbox --help``."""

    def get_help_option(self, ctx: Any) -> Any:  # Typer's own Click types are private
        option = super().get_help_option(ctx)
        if option is not None:
            option.default = False
        return option


app = typer.Typer(
    name="signoff",
    cls=QuickHelpGroup,
    help="Just-in-time action approval: request, review, grant, audit.\n\n"
    "Commands that talk to a server (request, run, execute, approve, deny, cancel, inbox, "
    "list, show, grant) reach it at SIGNOFF_URL (default http://127.0.0.1:8000) with the "
    "API token in SIGNOFF_TOKEN. The others work on this installation directly: its "
    "database (SIGNOFF_DATABASE_URL, default SQLite in SIGNOFF_DATA_DIR) and files.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
policy_app = typer.Typer(
    cls=QuickHelpGroup, help="Check, test, explain and replay policy-as-code.", no_args_is_help=True
)
token_app = typer.Typer(cls=QuickHelpGroup, help="API tokens.", no_args_is_help=True)
user_app = typer.Typer(
    cls=QuickHelpGroup, help="People: sign them out everywhere.", no_args_is_help=True
)
grant_app = typer.Typer(
    cls=QuickHelpGroup, help="Verify, redeem and revoke grants.", no_args_is_help=True
)
audit_app = typer.Typer(
    cls=QuickHelpGroup, help="Verify and export the audit log.", no_args_is_help=True
)
db_app = typer.Typer(cls=QuickHelpGroup, help="Database schema.", no_args_is_help=True)
outbox_app = typer.Typer(
    cls=QuickHelpGroup, help="Notifications waiting, delivered or dead.", no_args_is_help=True
)
keys_app = typer.Typer(
    cls=QuickHelpGroup,
    help="Signing keys (kept outside the database, in the key file).",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(grant_app, name="grant")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(outbox_app, name="outbox")
app.add_typer(keys_app, name="keys")
mcp_app = typer.Typer(
    cls=QuickHelpGroup,
    help="AI agents over MCP: gate an MCP server's tool calls, or serve Signoff's tools.",
    no_args_is_help=True,
)
app.add_typer(mcp_app, name="mcp")

# The order here is the order `signoff --help` lists them in.
app.command()(local.serve)
app.command()(local.worker)
db_app.command("upgrade")(local.db_upgrade)
token_app.command("create")(local.token_create)
user_app.command("logout")(local.user_logout)
app.command("signin-link")(local.signin_link)
policy_app.command("check")(local.policy_check)
policy_app.command("test")(local.policy_test)
policy_app.command("explain")(local.policy_explain)
policy_app.command("replay")(flow.policy_replay)

app.command()(remote.request)
app.command()(remote.execute)
app.command()(remote.run)
app.command()(remote.approve)
app.command()(remote.deny)
app.command()(remote.cancel)
app.command()(remote.inbox)
app.command("list")(remote.list_)
app.command()(remote.show)
app.command()(remote.whoami)
app.command()(remote.login)
app.command()(remote.logout)
app.command()(flow.report)
grant_app.command("verify")(remote.grant_verify)
grant_app.command("redeem")(remote.grant_redeem)
grant_app.command("token")(remote.grant_token)
grant_app.command("revoke")(remote.grant_revoke)

outbox_app.command("list")(local.outbox_list)
audit_app.command("verify")(local.audit_verify)
audit_app.command("export")(local.audit_export)
audit_app.command("checkpoint")(local.audit_checkpoint)
keys_app.command("list")(local.keys_list)
keys_app.command("rotate")(local.keys_rotate)
mcp_app.command("proxy")(mcp.proxy)
mcp_app.command("serve")(mcp.serve)


def where(command: Callable[..., Any]) -> str:
    """What a command connects to or reads, for the end of its help."""
    if command.__module__ in (remote.__name__, flow.__name__, mcp.__name__):
        return REMOTE
    if command is local.serve:
        return SERVE
    if command in (local.policy_check, local.policy_test, local.policy_explain):
        return FILES
    return LOCAL


for _group in (
    app,
    policy_app,
    token_app,
    user_app,
    grant_app,
    audit_app,
    db_app,
    outbox_app,
    keys_app,
    mcp_app,
):
    for _info in _group.registered_commands:
        if _info.callback is not None and _info.epilog is None:
            _info.epilog = where(_info.callback)

_NOT_ONE_OF = re.compile(r"'(?P<value>.*)' is not one of (?P<choices>.*?)\.?$")


def usage_said(exc: typer.TyperException) -> str:
    """A usage error as one line: the option and what is wrong with it, or Click's message
    and where the command's help is."""
    ctx = getattr(exc, "ctx", None)
    see = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
    param = getattr(exc, "param", None)
    message = exc.message.removeprefix("Value error, ")
    if isinstance(exc, typer.BadParameter) and param is not None and message:
        name = max(param.opts, key=len) if param.opts else param.human_readable_name
        choices = _NOT_ONE_OF.search(message)
        if choices:
            allowed = ", ".join(re.findall(r"'([^']*)'", choices["choices"]))
            return f"{name}: must be one of {allowed}, not {choices['value']!r}"
        return f"{name}: {message[:1].lower()}{message[1:].rstrip('.')}"
    text = getattr(exc, "format_message", lambda: exc.message)()
    return f"{text[:1].lower()}{text[1:].rstrip('.')}{see}"


def main() -> None:
    try:
        code = app(standalone_mode=False, prog_name="signoff")
    except typer.TyperException as exc:  # Click's usage errors
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group alone: its help
            say(exc.message.rstrip("\n"), err)
        else:
            say(f"error: {usage_said(exc)}", err, hang=2)
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
