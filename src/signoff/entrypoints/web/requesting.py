"""The requester's pages: My requests (what I asked for, newest first, live), New request
(a form with a dry run of the policies as I type), and on the request page, Cancel and
Execute.

Asking goes through the API's use case (``submit_or_fold``) and the dry run through
``explain``, so the form never promises what sending would not do. The form's fields
are bounded where they enter by the API's own body model (``RequestCreate``: lengths,
NUL characters, the params' depth and size), after a few bounds of the form's own
(number of lines); a refusal is the form again, with the message at its field and
every value kept.

What the form's text fields hold (the page says the same):

- params: ``key=value``, one per line; a line that starts with a space or tab continues
  the value above on a new line (multi-line SQL); or a JSON object (``{...}``); for
  ``command.run``, the command and then each argument, one per line.
- links: one per line. labels: ``key=value``, one per line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from signoff.adapters.channels.messages import needed_line, said, stage_line, when
from signoff.adapters.targets_file import ACTION_TYPES
from signoff.bootstrap import App
from signoff.domain.durations import format_duration
from signoff.domain.errors import InvalidInput, SignoffError
from signoff.domain.identity import User
from signoff.domain.limits import MAX_NODES, check_text
from signoff.domain.policy import Decision, Outcome
from signoff.domain.quorum import first_unstaffable
from signoff.domain.requests import MAX_TEXT, Status
from signoff.domain.requests import Request as SignoffRequest
from signoff.entrypoints.api.requests import to_action
from signoff.entrypoints.api.schemas import RequestCreate
from signoff.entrypoints.web.pages import (
    CSRF_REFUSED,
    HEADERS,
    NavItem,
    add_nav,
    page,
    signed_in,
    templates,
    to_signin,
)
from signoff.services import execution, sessions, views
from signoff.services import requests as use_cases
from signoff.services.dependencies import Services
from signoff.services.messages import summarize
from signoff.services.sessions import SignedIn

PAGE_SIZE = 25  # requests on one page of My requests
MAX_LINES = 100  # links, labels: lines in one field
MAX_PARAM_LINES = MAX_NODES  # params: lines (the params' own bound counts values)
ARGV_TYPE = ACTION_TYPES["command"]  # params one argument per line
RISKS = ("low", "medium", "high", "critical")
# States in the order a requester meets them, for the filter.
STATES = (
    Status.PENDING,
    Status.APPROVED,
    Status.EXECUTED,
    Status.FAILED,
    Status.DENIED,
    Status.CANCELLED,
    Status.TIMED_OUT,
    Status.EXPIRED,
    Status.REVOKED,
)


# ----- the form ---------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """The New request form as it was sent: every field as typed, so a refusal can
    show it again."""

    type: str = ""
    target: str = ""
    params: str = ""
    reason: str = ""
    ticket: str = ""
    risk: str = ""
    links: str = ""
    labels: str = ""

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Draft:
        """From form or query values; anything that is not text (a file) counts as
        empty. Line ends are made ``\\n`` (browsers send a textarea's as CRLF)."""

        def text(name: str) -> str:
            value = values.get(name, "")
            return value.replace("\r\n", "\n").replace("\r", "\n") if isinstance(value, str) else ""

        return cls(**{f.name: text(f.name) for f in fields(cls)})

    @property
    def started(self) -> bool:
        return bool(self.type.strip() and self.target.strip())


@dataclass(frozen=True)
class Ask:
    """A draft read into what the use cases take."""

    body: RequestCreate

    @property
    def context(self) -> dict[str, Any]:
        return self.body.context.model_dump(exclude_none=True)

    @property
    def ticket(self) -> str | None:
        return self.body.ticket


FORM_FIELDS = tuple(f.name for f in fields(Draft))


def _field_of(path: object) -> str:
    """The form field an error's ``field`` names ("action.target", "links[2]",
    "labels.team", "params.sql"), or "" when it names none."""
    if not isinstance(path, str):
        return ""
    head = re.split(r"[.\[ ]", path.removeprefix("action.").removeprefix("context."), maxsplit=1)
    return head[0] if head[0] in FORM_FIELDS else ""


def _lines(text: str, name: str) -> list[tuple[int, str]]:
    """The non-blank lines of a field, numbered from 1, at most MAX_LINES of them."""
    found = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    if len(found) > MAX_LINES:
        raise InvalidInput(f"at most {MAX_LINES} lines", field=name)
    return found


def _pairs(text: str, name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in _lines(text, name):
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(f"line {n}: write key=value", field=name)
        if key in out:
            raise InvalidInput(f"line {n}: {key} is given twice", field=name)
        out[key] = value.strip()
    return out


def parse_params(text: str, action_type: str) -> dict[str, Any]:
    """The params field as the action's params (see the module's docstring)."""
    lines = text.split("\n")
    if len(lines) > MAX_PARAM_LINES:
        raise InvalidInput(f"at most {MAX_PARAM_LINES} lines", field="params")
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidInput(f"this is not a JSON object: {exc}", field="params") from None
        if not isinstance(value, dict):
            raise InvalidInput("this is not a JSON object", field="params")
        return value
    if action_type == ARGV_TYPE:
        argv = [line for line in lines if line.strip()]
        return {"argv": argv} if argv else {}
    params: dict[str, Any] = {}
    last: str | None = None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line[0] in " \t":
            if last is None:
                raise InvalidInput(
                    f"line {n} starts with a space, which continues the value above, "
                    "but there is no key=value line above it",
                    field="params",
                )
            params[last] += "\n" + line[1:]
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(
                f"line {n}: write key=value (or start the line with a space to continue "
                "the value above)",
                field="params",
            )
        if key in params:
            raise InvalidInput(f"line {n}: {key} is given twice", field="params")
        params[key] = value.strip()
        last = key
    return params


def _problem(error: Mapping[str, Any]) -> tuple[str, str]:
    """One error of the API's body model as (form field, message)."""
    loc = [str(p) for p in error.get("loc", ())]
    if loc and loc[0] in ("action", "context"):
        loc = loc[1:]
    name = loc[0] if loc and loc[0] in FORM_FIELDS else ""
    ctx = error.get("ctx") or {}
    if error.get("type") == "string_too_long":
        message = f"at most {ctx.get('max_length')} characters"
    elif error.get("type") == "literal_error":
        message = f"one of {', '.join(RISKS)}"
    else:
        message = str(error.get("msg", "not valid"))
    if name == "links" and len(loc) > 1 and loc[1].isdigit():
        message = f"link {int(loc[1]) + 1}: {message}"
    elif name == "labels" and len(loc) > 1:
        message = f"{loc[1]}: {message}"
    return name, message


def read_draft(d: Draft) -> Ask:
    """The draft as an ask, bounded like the API's body; InvalidInput names the field."""
    for name in FORM_FIELDS:  # in keys too, which the API's model does not look at
        check_text(getattr(d, name), name)
    kind, target = d.type.strip(), d.target.strip()
    if not kind:
        raise InvalidInput("say what kind of action this is, e.g. sql.execute", field="type")
    if not target:
        raise InvalidInput("say where it runs, e.g. pg/prod", field="target")
    risk = d.risk.strip()
    body = {
        "action": {"type": kind, "target": target, "params": parse_params(d.params, kind)},
        "reason": d.reason,
        "ticket": d.ticket.strip() or None,
        "context": {
            "links": [line.strip() for _, line in _lines(d.links, "links")],
            "labels": _pairs(d.labels, "labels"),
            "risk": risk or None,
        },
    }
    try:
        return Ask(RequestCreate.model_validate(body))
    except ValidationError as exc:
        name, message = _problem(exc.errors()[0])
        raise InvalidInput(message, field=name) from None


# ----- the dry run ------------------------------------------------------------------


@dataclass(frozen=True)
class DryRun:
    """What sending the form would do now, as the requester reads it."""

    outcome: str  # "allow", "review", "deny", or "" (not judged yet)
    headline: str
    problems: list[str] = field(default_factory=list)  # what would refuse it as it is
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # earlier policies, and why not


NOT_YET = DryRun("", "Fill in the type and the target to see what the policies decide.")


def _people(names: list[str]) -> str:
    return ", ".join(names) if names else "nobody"


def _review(svc: Services, user: User, decision: Decision) -> tuple[str, list[str]]:
    """ "2 approvals from dba (bob, carol) within 30m, then 1 from security (erin)", and
    a problem when a stage cannot be staffed without the requester."""
    parts, seats = [], []
    for i, s in enumerate(decision.policy.stages):
        people = sorted(svc.directory.resolve(s.users, s.groups) - {user.name})
        extra = sorted(svc.directory.resolve(s.escalate_users, s.escalate_groups) - {user.name})
        seats.append((frozenset(people) | frozenset(extra), s.quorum))
        many = "approval" + ("s" if s.quorum != 1 else "")
        text = f"{s.quorum} {many} from {s.name} ({_people(people)})"
        joiners = sorted(set(extra) - set(people))
        if s.timeout is not None and joiners:
            text += f", joined by {', '.join(joiners)} after {format_duration(s.timeout)}"
        elif s.timeout is not None:
            text += f" within {format_duration(s.timeout)}"
        parts.append(text if i == 0 else f"then {text}")
    problems = []
    short = first_unstaffable(seats)
    if short is not None:
        s = decision.policy.stages[short]
        problems.append(
            f"Stage {short + 1} ({s.name}) needs {s.quorum} approvers other than you and "
            "those counted in earlier stages, and has fewer: it would be refused."
        )
    return ", ".join(parts), problems


def dry_run(svc: Services, user: User, d: Draft) -> DryRun:
    """What the policies would decide for this draft, and what would refuse it: the
    same questions ``submit_or_fold`` asks, and nothing stored."""
    if not d.started:
        return NOT_YET
    try:
        ask = read_draft(d)
    except InvalidInput as exc:
        name = _field_of(exc.extra.get("field"))
        where = f"{name}: " if name else ""
        return DryRun("", f"Not checked yet: {where}{exc.detail}")
    action = to_action(ask.body.action)
    _, decision = use_cases.explain(svc, user, action, ask.context, ask.ticket)
    p = decision.policy
    problems, notes = [], []
    try:
        svc.check_action(action)
        runnable = True
    except InvalidInput as exc:
        problems.append(exc.detail)
        runnable = False
    headline = ""
    if decision.outcome is Outcome.DENY:
        headline = f"Denied: {use_cases.denial(svc, decision)}."
    elif decision.outcome is Outcome.REVIEW:
        stages, unstaffed = _review(svc, user, decision)
        headline = f"Review under policy {p.name}: {stages}."
        problems += unstaffed
    rules = p.rules  # what submit_or_fold asks of every request under this policy
    if rules.reason_required and not ask.body.reason.strip():
        problems.append(f"A reason is required (policy {p.name}).")
    elif rules.reason_required:
        notes.append("A reason is required: given.")
    pattern = rules.ticket_regex()
    if pattern is not None:
        wanted = f"A ticket matching {rules.ticket_pattern} is required"
        if not ask.ticket:
            problems.append(f"{wanted}: none given yet.")
        elif not pattern.fullmatch(ask.ticket):
            problems.append(f"{wanted}: {ask.ticket} does not match.")
        else:
            notes.append(f"{wanted}: {ask.ticket} matches.")
    if decision.outcome is Outcome.ALLOW:
        headline = f"Allowed by policy {p.name}: " + (
            "it would be approved once what is below is fixed."
            if problems
            else "approved as soon as you send it."
        )
    if decision.outcome is not Outcome.DENY and runnable:
        g = p.grant
        uses = f"{g.uses} use" + ("s" if g.uses != 1 else "")
        runs = (
            "Signoff runs it for you: press Execute on the request page."
            if action.target in svc.targets
            else "You get a grant token to use it."
        )
        notes.append(f"Once approved: {uses} within {format_duration(g.ttl)}. {runs}")
    skipped = [f"{m.policy}: {m.detail}" for m in decision.misses]
    return DryRun(decision.outcome.value, headline, problems, notes, skipped)


# ----- My requests ------------------------------------------------------------------


@dataclass(frozen=True)
class MineItem:
    id: str
    type: str
    target: str
    state: str
    state_text: str
    risk: str | None
    ticket: str | None
    reason: str
    policy: str
    asked: str
    progress: str


def list_item(r: SignoffRequest, targets: frozenset[str]) -> MineItem:
    """A request as the lists of requests show it (My requests, I decided, Watching)."""
    s = summarize(r, r.action.target in targets)
    if r.status is Status.PENDING and s.stage is not None:
        progress = f"Stage {stage_line(s.stage)} · {needed_line(s)}"
    else:
        progress = r.outcome or said(r.status.value)
        g = r.grant
        if r.status is Status.APPROVED and g is not None and g.revoked_at is None:
            ready = "ready to execute" if s.executes else "grant ready"
            progress += (
                f" · {ready}: {g.uses_left} of {g.uses_total} use(s) left, "
                f"until {when(g.expires_at.isoformat())}"
            )
    return MineItem(
        id=r.id,
        type=s.type,
        target=s.target,
        state=r.status.value,
        state_text=said(r.status.value),
        risk=s.risk,
        ticket=s.ticket,
        reason=s.reason,
        policy=s.policy,
        asked=when(r.created_at.isoformat()),
        progress=progress,
    )


# ----- the request page's requester actions -------------------------------------------


def requester_actions(app: App, me: SignedIn, r: SignoffRequest, done: str) -> dict[str, Any]:
    """What ``_requester_actions.html`` shows on the request page: for its requester,
    Cancel (pending or approved), Execute (approved, on a target Signoff runs), and
    what just happened (``done``)."""
    if me.user.name != r.requester:
        return {"mine": None}
    grant = r.grant
    usable = grant is not None and grant.revoked_at is None and grant.uses_left > 0
    flash = {
        "asked": {
            Status.PENDING: "Your request was sent: this page follows it live.",
            Status.APPROVED: "Approved at once by policy.",
            Status.DENIED: "The policies refused it: see the outcome below.",
        }.get(r.status, ""),
        "folded": (
            "You had already asked for exactly this and it is still pending: your "
            "reason was added to that request instead of asking the approvers again."
        ),
        "cancelled": "You cancelled this request.",
        "executed": {
            Status.EXECUTED: "Signoff ran it: the result is below.",
            Status.FAILED: "It failed: the result is below.",
            Status.APPROVED: "It did not run: see below. The request is still approved.",
        }.get(r.status, ""),
    }.get(done, "")
    return {
        "mine": {
            "flash": flash,
            "cancel": r.status in (Status.PENDING, Status.APPROVED),
            "execute": (
                r.status is Status.APPROVED and usable and r.action.target in app.services.targets
            ),
            "max_text": MAX_TEXT,
        }
    }


def _refused(me: SignedIn, app: App, title: str, exc: SignoffError, back: str) -> HTMLResponse:
    return page("message.html", title, exc.status, me=me, app=app, lines=[exc.detail], back=back)


def _actions_router(app: App) -> APIRouter:
    """Cancel and Execute, posted from the request page by its requester."""
    web = APIRouter(tags=["pages"], include_in_schema=False)
    svc = app.services

    @web.post("/requests/{request_id}/cancel", response_class=HTMLResponse)
    async def cancel(request: Request, request_id: str) -> Response:
        me, form = await _signed_in_form(app, request)
        if me is None:
            return to_signin(request)
        if len(request_id) > 100 or not sessions.csrf_ok(me, _text(form, "csrf")):
            return page("message.html", "Not cancelled", 403, me=me, app=app, lines=[CSRF_REFUSED])
        back = f"/requests/{request_id}"
        comment = _text(form, "comment").replace("\r\n", "\n")
        try:
            if len(comment) > MAX_TEXT:
                raise InvalidInput(f"the comment is longer than {MAX_TEXT} characters")
            if "\x00" in comment:
                raise InvalidInput("the comment contains a NUL character")
            r = await run_in_threadpool(
                use_cases.cancel_request, svc, me.user, request_id, comment.strip()
            )
        except SignoffError as exc:
            return _refused(me, app, "Not cancelled", exc, back)
        return RedirectResponse(f"/requests/{r.id}?done=cancelled", status_code=303)

    @web.post("/requests/{request_id}/execute", response_class=HTMLResponse)
    async def execute(request: Request, request_id: str) -> Response:
        me, form = await _signed_in_form(app, request)
        if me is None:
            return to_signin(request)
        if len(request_id) > 100 or not sessions.csrf_ok(me, _text(form, "csrf")):
            return page("message.html", "Not run", 403, me=me, app=app, lines=[CSRF_REFUSED])
        try:
            done = await run_in_threadpool(
                execution.execute_request, svc, app.executors, me.user, request_id
            )
        except SignoffError as exc:
            return _refused(me, app, "Not run", exc, f"/requests/{request_id}")
        return RedirectResponse(f"/requests/{done.request.id}?done=executed", status_code=303)

    return web


async def _signed_in_form(app: App, request: Request) -> tuple[SignedIn | None, Mapping[str, Any]]:
    me = await run_in_threadpool(signed_in, app, request)
    return me, await request.form()


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


# ----- the pages --------------------------------------------------------------------


def _choices(app: App) -> dict[str, list[str]]:
    """What the form offers: the action types the policies name (globs left out), and
    the targets Signoff runs actions on."""
    ps = app.services.policies
    named = {t for p in (*ps.policies, ps.default) for t in p.types}
    types = {t for t in named if not any(c in t for c in "*?[")}
    return {"types": sorted(types), "targets": sorted(app.services.targets)}


def router(app: App) -> APIRouter:
    web = APIRouter(tags=["pages"], include_in_schema=False)
    svc = app.services
    add_nav(NavItem("My requests", "/mine"))
    add_nav(NavItem("New request", "/new"))
    choices = _choices(app)

    def form_page(
        me: SignedIn,
        d: Draft,
        status: int = 200,
        errors: Mapping[str, str] | None = None,
        general: str = "",
    ) -> HTMLResponse:
        try:
            dry = dry_run(svc, me.user, d)
        except SignoffError as exc:
            dry = DryRun("", f"Not checked: {exc.detail}")
        return page(
            "new_request.html",
            "New request",
            status,
            me=me,
            app=app,
            here="/new",
            d=d,
            dry=dry,
            errors=errors or {},
            general=general,
            choices=choices,
            argv_type=ARGV_TYPE,
            risks=RISKS,
            max_text=MAX_TEXT,
        )

    @web.get("/mine", response_class=HTMLResponse)
    def mine(request: Request, state: str = "", cursor: str = "") -> Response:
        """The requests I asked for, newest first, a page at a time."""
        me = signed_in(app, request)
        if me is None:
            return to_signin(request)
        try:
            if len(state) > 20 or len(cursor) > 1000:
                raise InvalidInput("this filter is too long")
            if state and state not in {s.value for s in Status}:
                raise InvalidInput(f"there is no state {state!r}")
            found = views.list_requests(
                svc,
                me.user,
                status=state or None,
                requester=me.user.name,
                cursor=cursor or None,
                limit=PAGE_SIZE,
            )
        except SignoffError as exc:
            return _refused(me, app, "These requests cannot be listed", exc, "")
        items = [list_item(r, svc.targets) for r in found.items]
        older = ""
        if found.next_cursor:
            older = "/mine?" + urlencode({"state": state, "cursor": found.next_cursor})
        if items or cursor:
            empty = "No more requests."
        elif state:
            empty = f"None of your requests is {said(state)}."
        else:
            empty = "You have not asked for anything yet."
        return page(
            "mine.html",
            "My requests",
            me=me,
            app=app,
            here="/mine",
            live="/live",
            items=items,
            state=state,
            states=[(s.value, said(s.value)) for s in STATES],
            older=older,
            newest="/mine" + (f"?state={state}" if state else "") if cursor else "",
            empty=empty,
        )

    @web.get("/new", response_class=HTMLResponse)
    def new_request(request: Request) -> Response:
        """The form; its fields may be filled in from the query (``/new?type=...``)."""
        me = signed_in(app, request)
        if me is None:
            return to_signin(request)
        return form_page(me, Draft.of(request.query_params))

    @web.get("/new/preview", response_class=HTMLResponse)
    def preview(request: Request) -> Response:
        """The dry run alone, as an HTML fragment: what the page's script shows as the
        person types."""
        me = signed_in(app, request)
        if me is None:
            return Response(status_code=401, headers=HEADERS)
        try:
            dry = dry_run(svc, me.user, Draft.of(request.query_params))
        except SignoffError as exc:
            dry = DryRun("", f"Not checked: {exc.detail}")
        html = templates.get_template("_dry_run.html").render(dry=dry)
        return HTMLResponse(html, headers=HEADERS)

    @web.post("/new", response_class=HTMLResponse)
    async def ask(request: Request) -> Response:
        """Check (the dry run, nothing stored) or send: the same use case as the API,
        then the request's page, which follows it live."""
        me, form = await _signed_in_form(app, request)
        if me is None:
            return to_signin(request)
        if not sessions.csrf_ok(me, _text(form, "csrf")):
            return page("message.html", "Not sent", 403, me=me, app=app, lines=[CSRF_REFUSED])
        d = Draft.of(form)
        if _text(form, "do") == "check":
            return await run_in_threadpool(form_page, me, d)
        try:
            ask = read_draft(d)
            r, folded = await run_in_threadpool(
                use_cases.submit_or_fold,
                svc,
                me.user,
                to_action(ask.body.action),
                ask.body.reason,
                ask.ticket,
                ask.context,
            )
        except SignoffError as exc:
            name = _field_of(exc.extra.get("field"))
            if not name and d.target.strip() in svc.targets and isinstance(exc, InvalidInput):
                name = "params"  # the target's executor refused the params as given
            detail = exc.detail
            errors = {name: detail} if name else {}
            general = "" if name else detail
            return await run_in_threadpool(form_page, me, d, exc.status, errors, general)
        done = "folded" if folded else "asked"
        return RedirectResponse(f"/requests/{r.id}?done={done}", status_code=303)

    web.include_router(_actions_router(app))
    return web
