"""The ``signoff`` command line.

Exit codes: 0 success (approved, valid), 1 denied or refused, 2 usage or server error,
3 timed out or cancelled. Errors are one line on stderr, never a stack trace.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table

from signoff.config import ClientSettings, Settings
from signoff.domain.errors import PolicyError, SignoffError
from signoff.entrypoints.cli.client import ApiError, SignoffClient

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
app.add_typer(policy_app, name="policy")
app.add_typer(token_app, name="token")
app.add_typer(grant_app, name="grant")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_OK, EXIT_DENIED, EXIT_ERROR, EXIT_TIMEOUT = 0, 1, 2, 3
T = TypeVar("T")


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    err.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


@contextmanager
def client() -> Iterator[SignoffClient]:
    cs = ClientSettings()
    c = SignoffClient(cs.url, cs.token)
    try:
        yield c
    except ApiError as exc:
        code = EXIT_DENIED if exc.status == 403 else EXIT_ERROR
        fail(exc.detail, code)
    finally:
        c.close()


def guarded(fn: Callable[[], T]) -> T:
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


# ----- server side ----------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
) -> None:
    """Run the server (migrates the database first; prints an admin token at first start)."""
    import uvicorn

    from signoff.bootstrap import build
    from signoff.entrypoints.api.app import create_app
    from signoff.services.auth import create_token

    settings = Settings()
    signoff_app = guarded(lambda: build(settings))
    admins = [u.name for u in signoff_app.directory.users.values() if u.admin]
    if admins:
        with signoff_app.services.uow(write=False) as uow:
            first_start = all(uow.tokens.count_for(a) == 0 for a in admins)
        if first_start:
            token = create_token(signoff_app.services, admins[0], "first start")
            err.print(
                f"Admin API token for {admins[0]} (shown once, keep it safe):\n{token}",
                markup=False,
                highlight=False,
            )
    api = create_app(signoff_app)
    worker = signoff_app.worker().start() if settings.worker_in_server else None
    listener = None
    if signoff_app.engine.dialect.name == "postgresql":
        from signoff.adapters.pg_notify import PostgresListener

        listener = PostgresListener(settings.effective_database_url(), signoff_app.bus).start()
    try:
        uvicorn.run(
            api,
            host=host or settings.host,
            port=port or settings.port,
            log_level="info",
            timeout_graceful_shutdown=2,
        )
    finally:
        if worker is not None:
            worker.stop()
        if listener is not None:
            listener.stop()
        signoff_app.close()


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="One sweep, then exit.")] = False,
) -> None:
    """Run only the deadline worker (reminders, escalations, timeouts, grant expiry),
    for deployments that separate web and background roles."""
    import signal

    from signoff.bootstrap import build
    from signoff.services.scheduler import sweep

    settings = Settings()
    signoff_app = guarded(lambda: build(settings))
    try:
        if once:
            fired = sweep(signoff_app.services, settings.worker_batch)
            sent = signoff_app.dispatch(settings.worker_batch)
            out.print(
                f"fired {fired} event(s); notifications: {sent.delivered} delivered, "
                f"{sent.retried} to retry, {sent.dead} dead-lettered"
            )
            return
        runner = signoff_app.worker()
        signal.signal(signal.SIGTERM, lambda *_: runner.stop())
        err.print("deadline worker running", markup=False)
        runner.run()
    finally:
        signoff_app.close()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations to the configured database."""
    from signoff.adapters.db.engine import create_db_engine, current_revision, upgrade

    settings = Settings()
    engine = create_db_engine(settings.effective_database_url(), 1)
    try:
        upgrade(engine)
        out.print(f"database at revision {current_revision(engine)}")
    except Exception as exc:
        fail(f"migration failed: {type(exc).__name__}: {exc}")
    finally:
        engine.dispose()


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option(help="The user the token acts as.")],
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
) -> None:
    """Create an API token for a user; it is printed once and stored hashed."""
    from signoff.bootstrap import build
    from signoff.services.auth import create_token

    signoff_app = guarded(lambda: build(Settings()))
    try:
        token = guarded(lambda: create_token(signoff_app.services, user, label))
    finally:
        signoff_app.close()
    out.print(token, markup=False, highlight=False)


# ----- policies -------------------------------------------------------------------------


@policy_app.command("check")
def policy_check(
    directory: Annotated[Path | None, typer.Argument(help="Policy folder.")] = None,
    users: Annotated[Path | None, typer.Option(help="Users and groups file.")] = None,
) -> None:
    """Validate a policy folder; print every problem as file:line:column."""
    from signoff.adapters.directory_file import load_directory
    from signoff.adapters.policy_files import load_policy_set

    settings = Settings()
    folder = directory or settings.policies_dir

    def load() -> Any:
        return load_policy_set(folder, load_directory(users or settings.users_file))

    ps = guarded(load)
    out.print(f"ok: {len(ps)} policies, default {ps.default.outcome.value}, digest {ps.digest}")


@policy_app.command("explain")
def policy_explain(
    action: Annotated[str, typer.Option("--action", "--type", help="Action type.")],
    target: Annotated[str, typer.Option(help="Action target.")],
    param: Annotated[list[str] | None, typer.Option(help="key=value (repeatable).")] = None,
    as_user: Annotated[str | None, typer.Option("--as", help="Evaluate as this user.")] = None,
    ticket: Annotated[str | None, typer.Option(help="Ticket.")] = None,
    label: Annotated[list[str] | None, typer.Option(help="key=value (repeatable).")] = None,
    risk: Annotated[str | None, typer.Option(help="low, medium, high, critical.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show which policy decides an action and why every earlier one did not."""
    from signoff.bootstrap import load_rules
    from signoff.domain.actions import Action
    from signoff.domain.policy import EvaluationInput

    settings = Settings()
    directory, ps = guarded(lambda: load_rules(settings))
    if as_user is None:
        admins = [u for u in directory.users.values() if u.admin]
        as_user = admins[0].name if admins else next(iter(directory.users))
    user = guarded(lambda: directory.user(as_user or ""))
    act = guarded(lambda: Action(action, target, dict(parse_pairs(param, "--param"))))
    context: dict[str, Any] = {"labels": parse_pairs(label, "--label")}
    if risk:
        context["risk"] = risk
    decision = ps.explain(
        EvaluationInput(act, user, datetime.now(UTC), context, context["labels"], risk, ticket)
    )
    data = decision.as_dict()
    if as_json:
        out.print_json(json.dumps({"as": user.name, **data}))
        return
    for miss in decision.misses:
        out.print(f"  skip  {miss.policy}: {miss.clause}: {miss.detail}", markup=False)
    where = f" ({decision.policy.file}:{decision.policy.line})" if decision.policy.file else ""
    out.print(
        f"{decision.outcome.value.upper()}  {decision.policy.name}{where}: {decision.reason}",
        markup=False,
    )
    if decision.error:
        out.print(f"  error: {decision.error}", markup=False)
    for i, s in enumerate(decision.policy.stages, 1):
        people = sorted(directory.resolve(s.users, s.groups) - {user.name})
        out.print(
            f"  stage {i} {s.name}: quorum {s.quorum} of {', '.join(people) or 'nobody'}",
            markup=False,
        )


# ----- requests -------------------------------------------------------------------------


def _summary(r: dict[str, Any]) -> str:
    a = r["action"]
    return f"{r['id']}  {r['status']}  {a['type']} {a['target']}  by {r['requester']}"


def _progress(r: dict[str, Any]) -> str:
    if r["status"] != "pending":
        return f"request {r['id']} is {r['status']}"
    votes = ", ".join(f"{v['voter']} {v['decision']}d" for v in r.get("votes", [])) or "no votes"
    stage_total = len(r.get("stages", [])) if "stages" in r else 1
    return (
        f"pending: stage {r['current_stage'] + 1}/{max(stage_total, 1)}, "
        f"{r['still_needed']} more approval(s) needed; {votes}; "
        f"can vote: {', '.join(r.get('awaiting', [])) or 'nobody'}"
    )


def _finish(r: dict[str, Any], as_json: bool) -> NoReturn:
    status = r["status"]
    if as_json:
        out.print_json(json.dumps(r))
    elif status == "approved":
        grant = r.get("grant") or {}
        err.print(
            f"approved: grant {grant.get('id')} expires {grant.get('expires_at')}, "
            f"{grant.get('uses_left')} use(s)",
            markup=False,
        )
        out.print(grant.get("token") or "", markup=False, highlight=False, soft_wrap=True)
    else:
        err.print(f"request {r['id']} is {status}", markup=False)
        denials = [v for v in r.get("votes", []) if v["decision"] == "deny"]
        for v in denials:
            err.print(f"  denied by {v['voter']}: {v['comment']}", markup=False)
    code = {
        "approved": EXIT_OK,
        "executed": EXIT_OK,
        "denied": EXIT_DENIED,
        "timed_out": EXIT_TIMEOUT,
        "cancelled": EXIT_TIMEOUT,
        "expired": EXIT_TIMEOUT,
        "revoked": EXIT_DENIED,
    }.get(status, EXIT_ERROR)
    raise typer.Exit(code)


def _wait(c: SignoffClient, r: dict[str, Any], as_json: bool) -> NoReturn:
    """Follow the request's event stream until it is decided."""
    _finish(_follow(c, r), as_json)


def _follow(c: SignoffClient, r: dict[str, Any]) -> dict[str, Any]:
    """Follow the request's event stream until it is decided; the decided request."""
    interactive = err.is_terminal
    last_id: str | None = None
    status_line = _progress(r)
    if not interactive:
        err.print(f"waiting: {status_line}", markup=False)
    status_ctx = err.status(status_line) if interactive else None
    attempts = 0
    try:
        if status_ctx is not None:
            status_ctx.start()
        while True:
            try:
                for ev in c.events(r["id"], last_id):
                    last_id = str(ev["seq"])
                    snap = ev["request"]
                    merged = {**r, **snap}
                    line = f"{ev['type']} by {ev['actor']}: {_progress(merged)}"
                    if status_ctx is not None:
                        status_ctx.update(line)
                    elif ev["type"] != "request.submitted":
                        err.print(line, markup=False)
                    if snap["status"] != "pending":
                        return c.get_request(r["id"])
                attempts = 0
            except ApiError as exc:
                if exc.status != 0:
                    raise
                attempts += 1
                if attempts > 20:
                    raise
                time.sleep(min(5.0, 0.2 * 2**attempts))  # reconnect with Last-Event-ID
            current = c.get_request(r["id"])
            if current["status"] != "pending":
                return current
    finally:
        if status_ctx is not None:
            status_ctx.stop()


TypeOpt = Annotated[str, typer.Option("--type", help="Action type, e.g. sql.execute.")]
TargetOpt = Annotated[str, typer.Option(help="Action target, e.g. pg/prod.")]
ParamOpt = Annotated[list[str] | None, typer.Option(help="key=value (repeatable).")]
ArgOpt = Annotated[
    list[str] | None, typer.Option(help="One argv element of a command (repeatable).")
]
ReasonOpt = Annotated[str, typer.Option(help="Why you need this.")]
TicketOpt = Annotated[str | None, typer.Option(help="Ticket, e.g. OPS-42.")]


def _action_params(param: list[str] | None, arg: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_pairs(param, "--param"))
    if arg:
        params["argv"] = list(arg)
    return params


@app.command()
def request(
    type_: TypeOpt,
    target: TargetOpt,
    param: ParamOpt = None,
    arg: ArgOpt = None,
    reason: ReasonOpt = "",
    ticket: TicketOpt = None,
    link: Annotated[list[str] | None, typer.Option(help="A link for context.")] = None,
    label: Annotated[list[str] | None, typer.Option(help="key=value (repeatable).")] = None,
    risk: Annotated[str | None, typer.Option(help="low, medium, high, critical.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the decision.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Ask for approval of an action; with --wait, follow it until it is decided."""
    body: dict[str, Any] = {
        "action": {"type": type_, "target": target, "params": _action_params(param, arg)},
        "reason": reason,
        "ticket": ticket,
        "context": {"links": link or [], "labels": parse_pairs(label, "--label")},
    }
    if risk:
        body["context"]["risk"] = risk
    with client() as c:
        r = c.create_request(body)
        if r["status"] != "pending" or not wait:
            if wait or r["status"] != "pending":
                _finish(r, as_json)
            if as_json:
                out.print_json(json.dumps(r))
            else:
                out.print(r["id"], markup=False, highlight=False)
                err.print(_progress(r), markup=False)
            return
        err.print(f"request {r['id']} submitted under policy {r['policy']}", markup=False)
        _wait(c, r, as_json)


def _show_execution(x: dict[str, Any], as_json: bool) -> NoReturn:
    """Print what ran, as a user reads it; exit 0 if it succeeded, 2 if not."""
    if as_json:
        out.print_json(json.dumps(x))
    else:
        output = x.get("output") or {}
        if "columns" in output:
            table = Table(*output["columns"], show_lines=False)
            for row in output["rows"]:
                table.add_row(*("NULL" if v is None else str(v) for v in row))
            out.print(table)
        elif "stdout" in output:
            out.print(output.get("stdout", ""), markup=False, highlight=False, end="")
            if output.get("stderr"):
                err.print(output["stderr"], markup=False, highlight=False, end="")
        elif "body" in output:
            out.print(output["body"], markup=False, highlight=False)
        err.print(
            f"{'executed' if x['ok'] else 'failed'}: {x['summary']} "
            f"(request {x['request_id']} is {x.get('request_status')}; "
            f"output sha256 {str(x.get('output_digest'))[:12]})",
            markup=False,
        )
    raise typer.Exit(EXIT_OK if x["ok"] else EXIT_ERROR)


@app.command()
def execute(
    request_id: Annotated[str, typer.Argument(help="An approved request.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Have Signoff perform an approved request's action on its target; print the result."""
    with client() as c:
        x = c.execute(request_id)
    _show_execution(x, as_json)


@app.command()
def run(
    type_: TypeOpt,
    target: TargetOpt,
    param: ParamOpt = None,
    arg: ArgOpt = None,
    reason: ReasonOpt = "",
    ticket: TicketOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Ask, wait for the decision, and have Signoff run the action: one command."""
    body: dict[str, Any] = {
        "action": {"type": type_, "target": target, "params": _action_params(param, arg)},
        "reason": reason,
        "ticket": ticket,
    }
    with client() as c:
        r = c.create_request(body)
        if r["status"] == "pending":
            err.print(f"request {r['id']} submitted under policy {r['policy']}", markup=False)
            r = _follow(c, r)
        if r["status"] != "approved":
            _finish(r, as_json)
        x = c.execute(r["id"])
    _show_execution(x, as_json)


def _vote(request_id: str, decision: str, comment: str, as_json: bool) -> None:
    with client() as c:
        r = c.vote(request_id, decision, comment)
    if as_json:
        out.print_json(json.dumps(r))
    else:
        out.print(f"{decision}d: {_summary(r)}", markup=False)
        if r["status"] == "pending":
            out.print(_progress(r), markup=False)


@app.command()
def approve(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Approve a request."""
    _vote(request_id, "approve", comment, as_json)


@app.command()
def deny(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Deny a request (ends it)."""
    _vote(request_id, "deny", comment, as_json)


@app.command()
def cancel(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    comment: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Cancel a pending or approved request (requester or admin)."""
    with client() as c:
        r = c.cancel(request_id, comment)
    out.print(f"cancelled: {_summary(r)}", markup=False)


@app.command()
def inbox(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Requests awaiting your vote."""
    with client() as c:
        page = c.list_requests(awaiting="me", limit=200)
    if as_json:
        out.print_json(json.dumps(page))
        return
    if not page["items"]:
        out.print("nothing awaits you")
        return
    table = Table("id", "action", "target", "requester", "reason", "needed", "deadline")
    for r in page["items"]:
        table.add_row(
            r["id"],
            r["action"]["type"],
            r["action"]["target"],
            r["requester"],
            r["reason"],
            str(r["still_needed"]),
            r.get("deadline_at") or "-",
        )
    out.print(table)


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    requester: Annotated[str | None, typer.Option(help="Only this requester.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List requests, newest first."""
    with client() as c:
        page = c.list_requests(status=status, requester=requester, limit=limit)
    if as_json:
        out.print_json(json.dumps(page))
        return
    for r in page["items"]:
        out.print(_summary(r), markup=False)


@app.command()
def show(
    request_id: Annotated[str, typer.Argument(help="Request id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Everything about one request: action, context, policy, stages, votes, timeline."""
    with client() as c:
        r = c.get_request(request_id)
    if as_json:
        out.print_json(json.dumps(r))
        return
    a = r["action"]
    lines = [
        f"request   {r['id']}  [{r['status']}]",
        f"action    {a['type']} on {a['target']}  (digest {r['action_digest'][:16]}…)",
    ]
    for k, v in a["params"].items():
        lines.append(f"  param   {k} = {v}")
    lines += [
        f"requester {r['requester']}",
        f"reason    {r['reason'] or '-'}",
        f"ticket    {r['ticket'] or '-'}",
    ]
    ctx = r.get("context") or {}
    for link in ctx.get("links", []):
        lines.append(f"link      {link}")
    if ctx.get("labels"):
        lines.append("labels    " + ", ".join(f"{k}={v}" for k, v in ctx["labels"].items()))
    if ctx.get("risk"):
        lines.append(f"risk      {ctx['risk']}")
    lines.append(f"policy    {r['policy']}  (set {r['policy_set_digest'][:12]})")
    for i, s in enumerate(r["stages"]):
        mark = "→" if i == r["current_stage"] and r["status"] == "pending" else " "
        lines.append(
            f"{mark} stage {i + 1} {s['name']}: {len(s['approvals'])}/{s['quorum']} "
            f"approvals from {', '.join(s['approvers'])}"
        )
    for v in r["votes"]:
        lines.append(f"vote      {v['voter']} {v['decision']}d: {v['comment']}")
    if r.get("grant"):
        g = r["grant"]
        lines.append(
            f"grant     {g['id']} expires {g['expires_at']} uses left {g['uses_left']}"
            + (" (revoked)" if g["revoked"] else "")
        )
    for e in r.get("timeline") or []:
        lines.append(f"  {e['at']}  #{e['seq']} {e['type']} by {e['actor']}")
    for line in lines:
        out.print(line, markup=False, highlight=False)


# ----- grants ---------------------------------------------------------------------------


def _action_body(type_: str, target: str, param: list[str] | None) -> dict[str, Any]:
    return {"type": type_, "target": target, "params": parse_pairs(param, "--param")}


@grant_app.command("verify")
def grant_verify(
    token: Annotated[str, typer.Argument(help="The grant token.")],
    type_: Annotated[str, typer.Option("--type", "--action", help="Action type.")],
    target: Annotated[str, typer.Option(help="Action target.")],
    param: Annotated[list[str] | None, typer.Option(help="key=value (repeatable).")] = None,
    jwks: Annotated[
        str | None, typer.Option(help="JWKS file or URL (default: the server's).")
    ] = None,
) -> None:
    """Check a token offline against the JWKS: signature, expiry and the action's digest.

    This does not consume a use; redemption does (``signoff grant redeem``)."""
    from signoff.adapters.signing import verify_with_jwks
    from signoff.domain.actions import Action

    body = _action_body(type_, target, param)
    if jwks and not jwks.startswith(("http://", "https://")):
        try:
            keys = json.loads(Path(jwks).read_text())
        except (OSError, ValueError) as exc:
            fail(f"cannot read JWKS file {jwks}: {exc}")
    elif jwks:  # a JWKS URL elsewhere is fetched without our API token
        try:
            keys = httpx.get(jwks, timeout=10).raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            fail(f"cannot fetch JWKS from {jwks}: {exc}")
    else:
        with client() as c:
            keys = c.jwks()
    try:
        claims = verify_with_jwks(token, keys, datetime.now(UTC))
    except SignoffError as exc:
        fail(f"invalid: {exc.detail}", EXIT_DENIED)
    digest = guarded(lambda: Action(body["type"], body["target"], body["params"]).digest)
    if claims["act"] != digest:
        fail("invalid: the action differs from the approved action", EXIT_DENIED)
    exp = datetime.fromtimestamp(claims["exp"], UTC).isoformat()
    out.print(
        f"valid: grant {claims['jti']} for request {claims['rid']} by {claims['sub']}, "
        f"{claims['uses']} use(s), expires {exp}",
        markup=False,
    )


@grant_app.command("redeem")
def grant_redeem(
    token: Annotated[str, typer.Argument(help="The grant token.")],
    type_: Annotated[str, typer.Option("--type", "--action", help="Action type.")],
    target: Annotated[str, typer.Option(help="Action target.")],
    param: Annotated[list[str] | None, typer.Option(help="key=value (repeatable).")] = None,
) -> None:
    """Consume one use of a grant for exactly this action."""
    with client() as c:
        r = c.redeem(token, _action_body(type_, target, param))
    out.print(
        f"redeemed: grant {r['grant_id']}, {r['uses_left']} use(s) left, request {r['status']}",
        markup=False,
    )


@grant_app.command("revoke")
def grant_revoke(
    grant_id: Annotated[str, typer.Argument(help="Grant id.")],
    comment: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Revoke a grant (admins)."""
    with client() as c:
        r = c.revoke(grant_id, comment)
    out.print(f"revoked: {_summary(r)}", markup=False)


# ----- audit ----------------------------------------------------------------------------


def _local_services() -> Any:
    from signoff.bootstrap import build

    return guarded(lambda: build(Settings()))


outbox_app = typer.Typer(help="Notifications waiting, delivered or dead.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("list")
def outbox_list(
    dead: Annotated[bool, typer.Option("--dead", help="Only dead-lettered rows.")] = False,
    status: Annotated[str | None, typer.Option(help="pending, delivered or dead.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List outbox rows (local database)."""
    signoff_app = _local_services()
    try:
        with signoff_app.services.uow(write=False) as uow:
            rows = uow.outbox.rows("dead" if dead else status, limit)
            counts = uow.outbox.counts()
    finally:
        signoff_app.close()
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    out.print(
        ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "the outbox is empty",
        markup=False,
    )
    for r in rows:
        out.print(
            f"#{r['id']} {r['status']} {r['topic']} {r['payload'].get('event')} "
            f"request {r['request_id']} attempts {r['attempts']}"
            + (f" error: {r['last_error']}" if r["last_error"] else ""),
            markup=False,
            highlight=False,
        )


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the hash chain of the configured database; report the first broken link."""
    from signoff.services.views import verify_audit

    signoff_app = _local_services()
    try:
        report = verify_audit(signoff_app.services)
    finally:
        signoff_app.close()
    if report.ok:
        out.print(f"ok: {report.checked} events, chain intact")
        return
    fail(f"audit chain broken at event {report.broken_at}: {report.problem}", EXIT_DENIED)


@audit_app.command("export")
def audit_export(
    format_: Annotated[str, typer.Option("--format", help="Only jsonl for now.")] = "jsonl",
    after: Annotated[int, typer.Option(help="Start after this sequence number.")] = 0,
) -> None:
    """Stream the audit log as JSON lines."""
    from signoff.services.views import export_audit

    if format_ != "jsonl":
        fail(f"unknown format {format_!r}; supported: jsonl")
    signoff_app = _local_services()
    try:
        for ev in export_audit(signoff_app.services, after):
            sys.stdout.write(json.dumps(ev.as_dict(), ensure_ascii=False) + "\n")
    finally:
        signoff_app.close()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
