"""Commands that talk to a Signoff server over HTTP (``SIGNOFF_URL``, ``SIGNOFF_TOKEN``).

``request``, ``run``, ``execute``, ``approve``, ``deny``, ``cancel``, ``inbox``,
``list``, ``show``, ``grant verify``, ``grant redeem``, ``grant revoke``; ``main.py``
registers them. The HTTP client (httpx) is imported when a command runs, not for
``--help``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from signoff import commands
from signoff.domain.errors import SignoffError
from signoff.entrypoints.cli.options import (
    ArgOpt,
    CommentOpt,
    JsonOpt,
    LabelOpt,
    LinkOpt,
    ParamOpt,
    ReasonOpt,
    RequestIdArg,
    Risk,
    RiskOpt,
    TargetOpt,
    TicketOpt,
    TypeOpt,
)
from signoff.entrypoints.cli.output import (
    EXIT_DENIED,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    err,
    fail,
    out,
    parse_pairs,
    say,
)

if TYPE_CHECKING:
    from signoff.entrypoints.cli.client import ClientSettings, SignoffClient


@contextmanager
def client() -> Iterator[SignoffClient]:
    """The client for ``SIGNOFF_URL`` and ``SIGNOFF_TOKEN``; an API problem inside the
    block ends the command with one line in the CLI's terms (``problems.said``)."""
    from signoff.entrypoints.cli import problems
    from signoff.entrypoints.cli.client import ApiError, SignoffClient
    from signoff.entrypoints.cli.credentials import LoginError

    try:
        cs, renew = settings_and_renewal()
        c = SignoffClient(cs.url, cs.token, renew=renew)
    except LoginError as exc:
        fail(exc.message, exc.code)
    try:
        yield c
    except ApiError as exc:
        # One rule: the server understood and said no (not allowed, already voted, not
        # in a state for it) is 1, like a denial; a mistake in the call or a failure is 2.
        code = EXIT_DENIED if exc.status in (403, 409) else EXIT_ERROR
        fail(problems.said(exc, cs), code)
    except LoginError as exc:  # the login could not be renewed
        fail(exc.message, exc.code)
    finally:
        c.close()


def settings_and_renewal() -> tuple[ClientSettings, Callable[[], str] | None]:
    """Where the server is and the token to send: SIGNOFF_TOKEN when set; else the
    stored login (``signoff login``), renewed when about to expire and when the server
    answers 401 (``ClientSettings.with_login``)."""
    from signoff.entrypoints.cli.client import ClientSettings

    return ClientSettings.from_env().with_login()


def voted(decision: str) -> str:
    """A vote as the server reported it, in the past tense ("approved")."""
    from signoff.domain.requests import Decision

    return Decision(decision).done if decision in set(Decision) else decision


def said(status: str) -> str:
    """A state as people say it ("timed out", not "timed_out")."""
    return status.replace("_", " ")


def _summary(r: dict[str, Any]) -> str:
    a = r["action"]
    return f"{r['id']}  {said(r['status'])}  {a['type']} {a['target']}  by {r['requester']}"


def _needed(r: dict[str, Any]) -> str:
    """What a pending request still needs: "1 more approval from bob or carol (stage 2
    of 2: security)"."""
    stages = r.get("stages") or []
    n = r["still_needed"]
    who = " or ".join(r.get("awaiting") or []) or "nobody"
    where = ""
    if stages:
        stage = stages[r["current_stage"]]
        where = f" (stage {r['current_stage'] + 1} of {len(stages)}: {stage['name']})"
    return f"{n} more approval{'s' if n != 1 else ''} from {who}{where}"


def _ended(r: dict[str, Any]) -> str:
    """Why a request is where it is: "request 1b2c… denied by bob: too broad"."""
    outcome = r.get("outcome")
    if outcome:
        return f"request {r['id']} {outcome}"
    return f"request {r['id']} is {said(r['status'])}"


def _progress(r: dict[str, Any]) -> str:
    """Where a request stands, in one short line: "pending: needs 1 more approval from
    carol (stage 1 of 1: dba)", or "request <id> is approved"."""
    if r["status"] != "pending":
        return f"request {r['id']} is {said(r['status'])}"
    return f"pending: needs {_needed(r)}"


def _event_said(ev: dict[str, Any]) -> str:
    """An event of the request's stream as people say it: "bob approved (looks right)",
    "stage 2 (security) opened"; an event without words of its own by its name."""
    from signoff.domain.events import EventType

    p = ev.get("payload") or {}
    actor = ev["actor"]
    match ev["type"]:
        case EventType.VOTE_CAST:
            comment = f" ({p['comment']})" if p.get("comment") else ""
            passkey = " with a passkey" if isinstance(p.get("step_up"), dict) else ""
            return f"{actor} {voted(str(p.get('decision')))}{passkey}{comment}"
        case EventType.STAGE_ADVANCED:
            return f"stage {int(p.get('stage', 0)) + 1} ({p.get('name')}) opened"
        case EventType.STAGE_ESCALATED:
            return f"escalated: {' and '.join(p.get('added') or []) or 'nobody'} may approve too"
        case EventType.REQUEST_REMINDED:
            return f"reminded {' and '.join(p.get('to') or []) or 'nobody'}"
        case EventType.REQUEST_FOLDED:
            return f"{actor} asked the same again (folded into this request)"
    return f"{ev['type']} by {actor}"


def _finish(r: dict[str, Any], as_json: bool) -> NoReturn:
    status = r["status"]
    if as_json:
        out.print_json(json.dumps(r))
    elif status == "approved":
        grant = r.get("grant") or {}
        say(
            f"approved: grant {grant.get('id')} expires {grant.get('expires_at')}, "
            f"{grant.get('uses_left')} use(s)",
            err,
        )
        out.print(grant.get("token") or "", markup=False, highlight=False, soft_wrap=True)
    else:
        say(_ended(r), err)
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
    """Follow the request's event stream until it is decided; the decided request.

    Each event is a line on stderr (wrapped at spaces in a terminal); in a terminal a
    spinner under them says what the request still needs. Ctrl-C stops following: the
    request stays pending, and the last line says so and how to cancel it (exit 130)."""
    try:
        return _follow_events(c, r)
    except KeyboardInterrupt:
        say(f"request {r['id']} is still pending; cancel it with: signoff cancel {r['id']}", err)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _follow_events(c: SignoffClient, r: dict[str, Any]) -> dict[str, Any]:
    from signoff.domain.events import EventType
    from signoff.entrypoints.cli.client import ApiError

    last_id: str | None = None
    spinner = err.status(_progress(r)) if err.is_terminal else None
    if spinner is None:
        say(_progress(r), err)
    attempts = 0
    try:
        if spinner is not None:
            spinner.start()
        while True:
            try:
                for ev in c.events(r["id"], last_id):
                    last_id = str(ev["seq"])
                    snap = ev["request"]
                    merged = {**r, **snap}
                    if ev["type"] != EventType.REQUEST_SUBMITTED:
                        say(f"{_event_said(ev)}; {_progress(merged)}", err)
                    if spinner is not None:
                        spinner.update(_progress(merged))
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
        if spinner is not None:
            spinner.stop()


def _action_params(param: list[str] | None, arg: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_pairs(param, "--param"))
    if arg:
        params["argv"] = list(arg)
    return params


def _ask(
    type_: str,
    target: str,
    param: list[str] | None,
    arg: list[str] | None,
    reason: str,
    ticket: str | None,
    link: list[str] | None,
    label: list[str] | None,
    risk: Risk | None,
) -> dict[str, Any]:
    """The body of a new request, from the options ``request`` and ``run`` share."""
    context: dict[str, Any] = {"links": link or [], "labels": parse_pairs(label, "--label")}
    if risk:
        context["risk"] = risk.value
    return {
        "action": {"type": type_, "target": target, "params": _action_params(param, arg)},
        "reason": reason,
        "ticket": ticket,
        "context": context,
    }


def request(
    type_: TypeOpt,
    target: TargetOpt,
    param: ParamOpt = None,
    arg: ArgOpt = None,
    reason: ReasonOpt = "",
    ticket: TicketOpt = None,
    link: LinkOpt = None,
    label: LabelOpt = None,
    risk: RiskOpt = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the request until it is decided.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ask for approval of an action.

    With --wait, follow it until it is decided; Ctrl-C stops following and leaves it
    pending."""
    body = _ask(type_, target, param, arg, reason, ticket, link, label, risk)
    with client() as c:
        r = c.create_request(body)
        if r["status"] != "pending" or not wait:
            if wait or r["status"] != "pending":
                _finish(r, as_json)
            if as_json:
                out.print_json(json.dumps(r))
            else:
                out.print(r["id"], markup=False, highlight=False)
                say(_progress(r), err)
            return
        say(f"request {r['id']} submitted under policy {r['policy']}", err)
        _wait(c, r, as_json)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    return value if isinstance(value, str) else json.dumps(value)


def show_rows(columns: list[str], rows: list[list[Any]], named: bool = False) -> None:
    """Rows as people read them: piped, tab-separated lines (a header, then one line a
    row; a tab or newline in a value written \\t, \\n); in a terminal, a table whose long
    cells fold onto more lines, or, when even the column names do not fit the width, one
    "column: value" line each. No value is cut short."""
    cells = [[_cell(v) for v in row] for row in rows]
    if not out.is_terminal:
        for line in [columns, *cells]:
            text = "\t".join(v.replace("\t", "\\t").replace("\n", "\\n") for v in line)
            say(text)  # piped: as it is, tabs too
        return
    from rich.cells import cell_len
    from rich.table import Column, Table
    from rich.text import Text

    table = Table(*(Column(c, overflow="fold") for c in columns), show_lines=True)
    for row in cells:
        table.add_row(*(Text(v) for v in row))
    if sum(cell_len(c) + 3 for c in columns) + 1 <= out.width:  # "│ name " each, "│"
        out.print(table)
        return
    for i, row in enumerate(cells, 1):
        if named:  # the first column names the row (a policy, a person)
            say(f"{columns[0]} {row[0]}:")
            pairs = list(zip(columns[1:], row[1:], strict=True))
        else:
            say(f"row {i}:")
            pairs = list(zip(columns, row, strict=True))
        for name, value in pairs:
            say(f"  {name}: {value}")


def _show_execution(x: dict[str, Any], as_json: bool) -> NoReturn:
    """Print what ran, as a user reads it; exit 0 if it succeeded, 2 if not."""
    if as_json:
        out.print_json(json.dumps(x))
    else:
        output = x.get("output") or {}
        if "columns" in output:
            show_rows(output["columns"], output["rows"])
        elif "stdout" in output:
            out.print(output.get("stdout", ""), markup=False, highlight=False, end="")
            if output.get("stderr"):
                err.print(output["stderr"], markup=False, highlight=False, end="")
        elif "body" in output:
            out.print(output["body"], markup=False, highlight=False)
        if output.get("truncated"):
            kept = (
                f"its first {len(output['rows'])} rows (the target's max_rows)"
                if "columns" in output
                else "the start of it (the target's max_output bytes)"
            )
            say(f"the output was longer: Signoff kept {kept}", err)
        say(
            f"{'executed' if x['ok'] else 'failed'}: {x['summary']} "
            f"(request {x['request_id']} is {said(str(x.get('request_status')))}; "
            f"output sha256 {str(x.get('output_digest'))[:12]}…)",
            err,
        )
    raise typer.Exit(EXIT_OK if x["ok"] else EXIT_ERROR)


def execute(
    request_id: Annotated[
        str, typer.Argument(metavar="ID", help="An approved request (8+ characters of its id).")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Run an approved request's action through Signoff.

    Signoff performs it on its target; the result is printed."""
    with client() as c:
        x = c.execute(request_id)
    _show_execution(x, as_json)


def run(
    type_: TypeOpt,
    target: TargetOpt,
    param: ParamOpt = None,
    arg: ArgOpt = None,
    reason: ReasonOpt = "",
    ticket: TicketOpt = None,
    link: LinkOpt = None,
    label: LabelOpt = None,
    risk: RiskOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask, wait for the decision, and run the action.

    request --wait and execute in one command: once the request is approved, Signoff
    performs the action on its target and the result is printed."""
    body = _ask(type_, target, param, arg, reason, ticket, link, label, risk)
    with client() as c:
        r = c.create_request(body)
        if r["status"] == "pending":
            say(f"request {r['id']} submitted under policy {r['policy']}", err)
            r = _follow(c, r)
        if r["status"] != "approved":
            _finish(r, as_json)
        try:
            x = c.execute(r["id"])
        except KeyboardInterrupt:
            say(
                f"request {r['id']} may still be running on its target; how it ended: "
                f"signoff show {r['id']}",
                err,
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None
    _show_execution(x, as_json)


def _vote(request_id: str, decision: str, comment: str, as_json: bool) -> None:
    with client() as c:
        r = c.vote(request_id, decision, comment)
    if as_json:
        out.print_json(json.dumps(r))
    else:
        what = "approval" if decision == "approve" else "denial"
        out.print(f"Your {what} of {r['id']} is recorded.", markup=False)
        if r["status"] == "pending":
            out.print(f"Still needed: {_needed(r)}.", markup=False)
        else:
            out.print(f"The request is {said(r['status'])}.", markup=False)


def approve(
    request_id: RequestIdArg,
    comment: CommentOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve a request."""
    _vote(request_id, "approve", comment, as_json)


def deny(
    request_id: RequestIdArg,
    comment: CommentOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Deny a request (ends it)."""
    _vote(request_id, "deny", comment, as_json)


def cancel(
    request_id: RequestIdArg,
    comment: CommentOpt = "",
) -> None:
    """Cancel a pending or approved request (requester or admin)."""
    with client() as c:
        r = c.cancel(request_id, comment)
    say(_ended(r))


def inbox(as_json: JsonOpt = False) -> None:
    """Requests awaiting your vote."""
    with client() as c:
        page = c.list_requests(awaiting="me", limit=200)
    if as_json:
        out.print_json(json.dumps(page))
        return
    if not page["items"]:
        out.print("nothing awaits you")
        return
    # Plain lines, never a table: the id an approver copies is never cut, at any width
    # and when piped; what matters about each request follows it, one fact a line (in a
    # terminal, a long fact wraps at spaces, indented under its first line).
    for r in page["items"]:
        a = r["action"]
        ctx = r.get("context") or {}
        say(f"{r['id']}  {a['type']} on {a['target']}  by {r['requester']}")
        facts: list[tuple[str, Any]] = [
            ("reason", r.get("reason")),
            ("ticket", r.get("ticket")),
            ("risk", ctx.get("risk")),
            ("labels", ", ".join(f"{k}={v}" for k, v in (ctx.get("labels") or {}).items())),
            *(("link", link) for link in ctx.get("links") or []),
            ("needs", _needed(r)),
            ("deadline", r.get("deadline_at")),
            *(a.get("params") or {}).items(),
            ("diff", ctx.get("diff")),
        ]
        for key, value in facts:
            if value is None or value == "":
                continue
            text = value if isinstance(value, str) else json.dumps(value)
            first, *rest = text.splitlines() or [""]
            whole = f"signoff show {r['id'][:8]}" + (" --json" if key == "diff" else "")
            lines = f"{len(rest)} more line{'s' if len(rest) != 1 else ''}"
            more = f" (+{lines}: {whole})" if rest else ""
            say(f"  {key}: {first}{more}")
    if page.get("next_cursor"):
        say(f"(only the first {len(page['items'])} waiting for you are listed)")


def list_(
    status: Annotated[
        str | None,
        typer.Option(metavar="STATUS", help="Only this status: pending, approved, denied, ..."),
    ] = None,
    requester: Annotated[
        str | None, typer.Option(metavar="NAME", help="Only this requester's.")
    ] = None,
    limit: Annotated[int, typer.Option(metavar="N", help="How many, at most 200.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List requests, newest first."""
    with client() as c:
        page = c.list_requests(status=status, requester=requester, limit=limit)
    if as_json:
        out.print_json(json.dumps(page))
        return
    if not page["items"]:
        out.print("no requests" + (" match" if status or requester else ""))
        return
    for r in page["items"]:
        out.print(_summary(r), markup=False)


def show(
    request_id: RequestIdArg,
    as_json: JsonOpt = False,
) -> None:
    """Everything about one request.

    Its action, context, policy, stages, votes, outcome and timeline."""
    with client() as c:
        r = c.get_request(request_id)
    if as_json:
        out.print_json(json.dumps(r))
        return
    a = r["action"]
    lines = [
        f"request   {r['id']}  [{said(r['status'])}]",
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
    pending = r["status"] == "pending"
    for i, s in enumerate(r["stages"]):
        current = i == r["current_stage"] and pending
        joined = [p for p in s.get("escalate_to", []) if p in s["approvers"]]
        who = ", ".join(s["approvers"]) + (
            f" (escalated: {', '.join(joined)} joined)" if s.get("escalated") and joined else ""
        )
        lines.append(
            f"{'→' if current else ' '} stage {i + 1} {s['name']}: "
            f"{len(s['approvals'])}/{s['quorum']} approvals from {who}"
        )
        if current and r.get("deadline_at"):
            later = [p for p in s.get("escalate_to", []) if p not in s["approvers"]]
            then = f"escalates to {', '.join(later)}" if later else "ends"
            lines.append(f"          until {r['deadline_at']}, then {then}")
    if pending:
        lines.append(f"needs     {_needed(r)}")
    for v in r["votes"]:
        said_ = f": {v['comment']}" if v["comment"] else ""
        lines.append(f"vote      {v['voter']} {voted(v['decision'])}{said_}")
    if r.get("outcome"):
        lines.append(f"outcome   {r['outcome']}")
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


def _action_body(
    type_: str, target: str, param: list[str] | None, arg: list[str] | None
) -> dict[str, Any]:
    return {"type": type_, "target": target, "params": _action_params(param, arg)}


GrantTokenArg = Annotated[
    str, typer.Argument(metavar="TOKEN", help="The grant token (what request --wait printed).")
]
GrantTypeOpt = Annotated[
    str, typer.Option("--type", "--action", metavar="TYPE", help="The action's type.")
]
GrantTargetOpt = Annotated[str, typer.Option(metavar="TARGET", help="The action's target.")]


def grant_verify(
    token: GrantTokenArg,
    type_: GrantTypeOpt,
    target: GrantTargetOpt,
    param: ParamOpt = None,
    arg: ArgOpt = None,
    jwks: Annotated[
        str | None,
        typer.Option(metavar="FILE|URL", help="JWKS file or URL (default: the server's)."),
    ] = None,
) -> None:
    """Check a token offline against the JWKS: signature, expiry and the action's digest.

    This does not consume a use; redemption does (signoff grant redeem)."""
    from signoff.domain.errors import GrantRefused
    from signoff.sdk._api import verified

    body = _action_body(type_, target, param, arg)
    if jwks and not jwks.startswith(("http://", "https://")):
        try:
            keys = json.loads(Path(jwks).read_text())
        except (OSError, ValueError) as exc:
            fail(f"cannot read JWKS file {jwks}: {exc}")
    elif jwks:  # a JWKS URL elsewhere is fetched without our API token
        import httpx

        try:
            keys = httpx.get(jwks, timeout=10).raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            fail(f"cannot fetch JWKS from {jwks}: {exc}")
    else:
        with client() as c:
            keys = c.jwks()
    try:
        claims = verified(token, keys, body["type"], body["target"], body["params"])
    except GrantRefused as exc:
        fail(f"invalid: {exc.detail}", EXIT_DENIED)
    except SignoffError as exc:  # the action given is malformed
        fail(exc.detail)
    exp = datetime.fromtimestamp(claims["exp"], UTC).isoformat()
    out.print(
        f"valid: grant {claims['jti']} for request {claims['rid']} by {claims['sub']}, "
        f"{claims['uses']} use(s), expires {exp}",
        markup=False,
    )


def grant_redeem(
    token: GrantTokenArg,
    type_: GrantTypeOpt,
    target: GrantTargetOpt,
    param: ParamOpt = None,
    arg: ArgOpt = None,
) -> None:
    """Consume one use of a grant for exactly this action."""
    if not token.strip():
        fail("the token is empty: get it with: " + commands.grant_token("REQUEST_ID"))
    with client() as c:
        r = c.redeem(token, _action_body(type_, target, param, arg))
    out.print(
        f"redeemed: grant {r['grant_id']}, {r['uses_left']} use(s) left, request {r['status']}",
        markup=False,
    )


def whoami(as_json: JsonOpt = False) -> None:
    """Who you are to the server: name, groups, how you signed in (signoff login or
    SIGNOFF_TOKEN), and a pipeline's token claims."""
    from signoff.entrypoints.cli import credentials

    with client() as c:
        me = c.me()
        url = c.url
    if as_json:
        out.print_json(json.dumps(me))
        return
    say(f"{me['name']}{' (admin)' if me['admin'] else ''}")
    say(f"groups: {', '.join(me['groups']) or 'none'}")
    login = credentials.load() if not os.environ.get("SIGNOFF_TOKEN") else None
    if login is not None and login.url == url:
        until = datetime.fromtimestamp(login.expires_at, UTC).strftime("%H:%M:%S UTC")
        renewed = "renewed by itself" if login.refresh_token else "then run signoff login"
        say(f"signed in: signoff login with {login.issuer} (until {until}, {renewed})")
    else:
        say(f"signed in: SIGNOFF_TOKEN on {url}")
    for key, value in sorted((me.get("claims") or {}).items()):
        say(f"  {key}: {value}")


def grant_token(
    request_id: Annotated[str, typer.Argument(help="An approved request of yours.")],
) -> None:
    """Print an approved request's grant token (to its requester and those the policy
    lets hold it), for the tool that redeems it for the approved action."""
    with client() as c:
        r = c.get_request(request_id)
    token = (r.get("grant") or {}).get("token")
    if not token:
        why = r.get("outcome") or f"it is {said(r['status'])}"
        fail(f"request {r['id']} has no grant token for you ({why})", EXIT_DENIED)
    out.print(token, markup=False, highlight=False, soft_wrap=True)


def grant_revoke(
    grant_id: Annotated[str, typer.Argument(metavar="GRANT_ID", help="The grant's id.")],
    comment: CommentOpt = "",
) -> None:
    """Revoke a grant (admins)."""
    with client() as c:
        r = c.revoke(grant_id, comment)
    out.print(f"revoked: {_summary(r)}", markup=False)


def login(
    url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="The server (default: SIGNOFF_URL)."),
    ] = None,
    no_browser: Annotated[
        bool,
        typer.Option("--no-browser", help="Print the sign-in address; do not open a browser."),
    ] = False,
) -> None:
    """Sign in with your organisation's identity provider (the one the server names):
    a code to confirm in any browser, or a browser on this machine. The tokens are kept
    in your config folder (mode 0600) and renewed by themselves; SIGNOFF_TOKEN, when
    set, still comes first."""
    from signoff.entrypoints.cli import credentials
    from signoff.entrypoints.cli import login as flows
    from signoff.entrypoints.cli.client import ApiError, ClientSettings, SignoffClient

    server = (url or ClientSettings.from_env().url).rstrip("/")
    if not server.startswith(("http://", "https://")) or len(server) > 2000:
        fail(f"--url: must be an http(s) URL, not {server[:100]!r}")
    try:
        made = flows.sign_in(server, browser=not no_browser)
    except credentials.LoginError as exc:
        fail(exc.message, exc.code)
    c = SignoffClient(server, made.access_token)
    try:
        me = c.me()
    except ApiError as exc:
        fail(f"{server} refused the provider's token: {exc.detail}", EXIT_DENIED)
    finally:
        c.close()
    where = credentials.save(made)
    say(f"Logged in to {server} as {me['name']} (groups: {', '.join(me['groups']) or 'none'})")
    say(f"Tokens kept in {where}", err)


def logout() -> None:
    """Forget your login (signoff login): the tokens are removed from your config
    folder, and the refresh token revoked at the provider when it allows."""
    from signoff.entrypoints.cli import credentials
    from signoff.entrypoints.cli import login as flows

    try:
        held = credentials.load()
    except credentials.LoginError:
        held = None  # unreadable or unsafe: removed all the same
    problem = flows.revoke(held) if held is not None else None
    if not credentials.remove():
        say("Not logged in.")
        return
    if problem:
        say(f"warning: the provider did not revoke the refresh token ({problem})", err)
    say(f"Logged out{f' of {held.url}' if held is not None else ''}.")
