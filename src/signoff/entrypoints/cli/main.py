"""The ``signoff`` command line: the Typer app, assembled from two kinds of command.

- ``local.py``: commands that build the application from the server settings (with
  migrations) or read the policy files: serve, worker, db, token, policy, outbox, audit.
- ``remote.py``: commands that talk to a server over HTTP: request, run, execute,
  approve, deny, cancel, inbox, list, show, grant.

``output.py`` holds what they share (consoles, exit codes, ``fail``). Exit codes, one
rule for every command: 0 done; 1 refused (a denial, HTTP 403 or 409); 2 a mistake in
the call or a server or network error; 3 timed out or cancelled. Errors are one line on
stderr, never a stack trace.

Heavy modules (the HTTP client, settings, the database, the web framework) are imported
inside the commands that use them, so ``signoff --help`` stays quick.
"""

from __future__ import annotations

import sys

import typer

from signoff.entrypoints.cli import local, remote
from signoff.entrypoints.cli.output import err

app = typer.Typer(
    name="signoff",
    help="Just-in-time action approval: request, review, grant, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
policy_app = typer.Typer(help="Check and explain policy-as-code.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
grant_app = typer.Typer(help="Verify, redeem and revoke grants.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify and export the audit log.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
outbox_app = typer.Typer(help="Notifications waiting, delivered or dead.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Signing keys (kept outside the database, in the key file).", no_args_is_help=True
)
app.add_typer(policy_app, name="policy")
app.add_typer(token_app, name="token")
app.add_typer(grant_app, name="grant")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(outbox_app, name="outbox")
app.add_typer(keys_app, name="keys")

# The order here is the order `signoff --help` lists them in.
app.command()(local.serve)
app.command()(local.worker)
db_app.command("upgrade")(local.db_upgrade)
token_app.command("create")(local.token_create)
app.command("signin-link")(local.signin_link)
policy_app.command("check")(local.policy_check)
policy_app.command("explain")(local.policy_explain)

app.command()(remote.request)
app.command()(remote.execute)
app.command()(remote.run)
app.command()(remote.approve)
app.command()(remote.deny)
app.command()(remote.cancel)
app.command()(remote.inbox)
app.command("list")(remote.list_)
app.command()(remote.show)
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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
