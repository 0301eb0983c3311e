"""The admin pages: the loaded policy set and a dry run of it (explain), the audit log
(filters, pages, verify, export), the outbox (dead letters retried), people and groups
(a person signed out everywhere: sessions ended, tokens revoked); and the API tokens
page, which everyone signed in has (their own tokens; admins see and make everyone's).

Every page reads through the same views and use cases as the API and the CLI
(``views.audit_search``, ``views.audit_report``, ``use_cases.explain``,
``requeue_dead_letter``, ``create_token`` / ``revoke_token``, ``sign_out_everywhere``),
so a page cannot show or allow what they would not. Every input is bounded here, where
it enters, and a bad one is answered with a page that says what is wrong. Forms that
change something are POSTs carrying the session's CSRF token and answer with a
redirect, except token creation: the new token exists only in that answer, which shows
it once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from signoff.bootstrap import App
from signoff.domain.actions import MAX_TARGET_LENGTH, MAX_TYPE_LENGTH, Action
from signoff.domain.audit import AuditEvent
from signoff.domain.durations import format_duration
from signoff.domain.errors import InvalidInput, NotFound, SignoffError
from signoff.domain.events import EventType
from signoff.domain.limits import MAX_INT, MAX_KEY, check_json, check_text
from signoff.domain.policy import Decision as PolicyDecision
from signoff.domain.policy import PolicySet, Stage
from signoff.entrypoints.web.pages import (
    CSRF_REFUSED,
    NavItem,
    add_nav,
    page,
    signed_in,
    to_signin,
)
from signoff.services import auth, views
from signoff.services import requests as use_cases
from signoff.services.dispatcher import requeue_dead_letter
from signoff.services.ports import AuditQuery
from signoff.services.sessions import SignedIn, csrf_ok
from signoff.wording import plural

# Bounds on what the forms and filters take (the database's columns, or less).
MAX_PARAMS_TEXT = 200_000  # characters of the explain form's params
MAX_LABELS_TEXT = 20_000
MAX_LABEL_VALUE = 200
MAX_TICKET = 200
MAX_NAME = 100  # a person, an actor
MAX_REF = 100  # a request id or its prefix
MAX_CSRF = 200
MAX_INT32 = 2**31 - 1  # outbox ids are 32-bit serials
AUDIT_PAGE = 50
PAYLOAD_SHOWN = 20_000  # characters of one event's payload on the page (all of it: export)
AUDIT_PAGE_MOST = 500
OUTBOX_ROWS = 100
RISKS = ("low", "medium", "high", "critical")

ADMINS_ONLY = "Only admins may see this page."


def moment(at: datetime) -> str:
    """A time to the second, as admins compare them: "2026-11-23 14:05:09 UTC"."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ----- input ------------------------------------------------------------------------------


def bounded(values: Mapping[str, str], name: str, most: int, what: str) -> str:
    """A form or query field, at most ``most`` characters and without NUL."""
    value = values.get(name, "")
    if len(value) > most:
        raise InvalidInput(
            f"{what} is at most {most} characters (this one has {len(value)})", field=name
        )
    return check_text(value, what)


def parse_lines(text: str, what: str) -> dict[str, str]:
    """``key=value`` lines as a mapping. Blank lines are skipped; a line that starts
    with a space or a tab continues the value above (multi-line SQL)."""
    found: dict[str, str] = {}
    last: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line[0] in " \t" and last is not None:
            found[last] += "\n" + line.strip()
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(
                f"{what}, line {number}: write key=value (a line that starts with a space "
                "continues the value above)",
                field=what,
            )
        if len(key) > MAX_KEY:
            raise InvalidInput(
                f"{what}, line {number}: a key is at most {MAX_KEY} characters", field=what
            )
        if key in found:
            raise InvalidInput(f"{what}, line {number}: {key!r} is given twice", field=what)
        found[key] = value
        last = key
    return found


def parse_seq(value: str, what: str) -> int | None:
    """An audit sequence number from a link, or None when absent."""
    if not value:
        return None
    if not value.isdigit() or len(value) > 19 or int(value) > MAX_INT:
        raise InvalidInput(f"{what} must be an event number", field=what)
    return int(value)


def parse_day(value: str, what: str) -> date | None:
    if not value:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what}: write a date as YYYY-MM-DD", field=what) from None


async def form_of(request: Request) -> dict[str, str]:
    """The posted form's text fields (a file sent instead of text counts as empty)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


# ----- who may -----------------------------------------------------------------------------


def admin_or_refusal(app: App, request: Request, back: str = "") -> SignedIn | Response:
    """The signed-in admin; else the sign-in page (then ``back``, or here) or a 403 page
    for people."""
    me = signed_in(app, request)
    if me is None:
        if back:
            return RedirectResponse(f"/signin?next={quote(back, safe='/')}", status_code=303)
        return to_signin(request)
    if not me.user.admin:
        return page(
            "message.html",
            "For admins only",
            403,
            me=me,
            app=app,
            lines=[ADMINS_ONLY, f"You are signed in as {me.user.name}, who is not an admin."],
        )
    return me


def csrf_refused(app: App, me: SignedIn, title: str) -> HTMLResponse:
    return page("message.html", title, 403, me=me, app=app, lines=[CSRF_REFUSED])


def problem_page(
    app: App, me: SignedIn, title: str, exc: SignoffError, back: str, back_label: str
) -> HTMLResponse:
    """What went wrong, for people, with the way back."""
    return page(
        "admin_message.html",
        title,
        exc.status,
        me=me,
        app=app,
        lines=[exc.detail],
        back=back,
        back_label=back_label,
    )


# ----- the policy set ------------------------------------------------------------------------


def _people(users: tuple[str, ...], groups: tuple[str, ...], app: App) -> list[str]:
    named = list(users)
    for g in groups:
        members = sorted(app.services.directory.groups.get(g, frozenset()))
        named.append(f"group {g} ({', '.join(members) or 'nobody'})")
    return named


def where_of(app: App, file: str, line: int) -> str:
    """A policy's place, its file named from the policy folder ("10-main.yaml:12")."""
    if not file:
        return ""
    try:
        name = str(Path(file).resolve().relative_to(app.settings.policies_dir.resolve()))
    except ValueError:
        name = file
    return f"{name}:{line}"


ON_TIMEOUT = {"timed_out": "the request times out", "deny": "the request is denied"}


def policy_rows(app: App, ps: PolicySet) -> list[dict[str, Any]]:
    """What the policies page shows of each policy, the default last."""
    shown = []
    for p in (*ps.policies, ps.default):
        grant = p.grant
        grant_parts = [
            f"valid {format_duration(grant.ttl)}",
            f"{grant.uses} use{'s' if grant.uses != 1 else ''}",
        ]
        if grant.read_only:
            grant_parts.append("read-only")
        executors = _people(grant.executor_users, grant.executor_groups, app)
        redeemers = _people(grant.redeemer_users, grant.redeemer_groups, app)
        rules = []
        if p.rules.reason_required:
            rules.append("a reason is required")
        if p.rules.ticket_pattern:
            rules.append(f"ticket must match {p.rules.ticket_pattern}")
        shown.append(
            {
                "name": p.name,
                "default": p is ps.default,
                "description": p.description,
                "where": where_of(app, p.file, p.line),
                "outcome": p.outcome.value,
                "types": list(p.types),
                "targets": list(p.targets),
                "condition": p.condition.source if p.condition is not None else "",
                "stages": [_stage(app, i, s) for i, s in enumerate(p.stages, 1)],
                "on_timeout": ON_TIMEOUT.get(p.on_timeout, p.on_timeout) if p.stages else "",
                "grant": ", ".join(grant_parts),
                "executors": executors,
                "redeemers": redeemers,
                "rules": rules,
                "notify": list(p.notify),
                "digest": format_duration(p.digest_every) if p.digest_every else "",
                "viewers": _people(p.viewer_users, p.viewer_groups, app),
            }
        )
    return shown


def _stage(app: App, number: int, s: Stage) -> dict[str, Any]:
    clocks = []
    if s.timeout is not None:
        clocks.append(f"deadline {format_duration(s.timeout)}")
    if s.reminders:
        clocks.append("reminders at " + ", ".join(format_duration(r) for r in s.reminders))
    escalate = _people(s.escalate_users, s.escalate_groups, app)
    if escalate:
        after = (
            f", then {format_duration(s.escalation_timeout)} more"
            if s.escalation_timeout is not None
            else ""
        )
        clocks.append(f"escalates to {'; '.join(escalate)}{after}")
    return {
        "name": "" if s.name == f"stage-{number}" else s.name,  # a name the loader gave
        "quorum": s.quorum,
        "approvers": _people(s.users, s.groups, app),
        "clocks": clocks,
    }


@dataclass(frozen=True)
class Explained:
    """A dry run's answer, as the page shows it."""

    subject: str
    decision: PolicyDecision
    where: str
    stages: list[str]


def explain(app: App, me: SignedIn, values: Mapping[str, str]) -> Explained:
    """Read the explain form and ask the policy set, as ``/v1/policies/evaluate`` does."""
    svc = app.services
    type_ = bounded(values, "type", MAX_TYPE_LENGTH, "type").strip()
    target = bounded(values, "target", MAX_TARGET_LENGTH, "target").strip()
    if not type_:
        raise InvalidInput("give the action's type, e.g. sql.execute", field="type")
    if not target:
        raise InvalidInput("give the action's target, e.g. pg/prod", field="target")
    params = parse_lines(bounded(values, "params", MAX_PARAMS_TEXT, "params"), "params")
    check_json(params, "params")
    labels = parse_lines(bounded(values, "labels", MAX_LABELS_TEXT, "labels"), "labels")
    for key, value in labels.items():
        if len(value) > MAX_LABEL_VALUE:
            raise InvalidInput(
                f"labels: {key!r} is longer than {MAX_LABEL_VALUE} characters", field="labels"
            )
    check_json(labels, "labels")
    risk = bounded(values, "risk", 20, "risk")
    if risk and risk not in RISKS:
        raise InvalidInput(f"risk is one of {', '.join(RISKS)}", field="risk")
    ticket = bounded(values, "ticket", MAX_TICKET, "ticket").strip() or None
    requester = bounded(values, "requester", MAX_NAME, "requester").strip() or me.user.name
    if requester not in svc.directory.users:
        raise InvalidInput(f"nobody named {requester!r} is in the directory", field="requester")
    context: dict[str, Any] = {"labels": labels}
    if risk:
        context["risk"] = risk
    action = Action(type_, target, params)
    subject, decision = use_cases.explain(svc, me.user, action, context, ticket, as_user=requester)
    p = decision.policy
    stages = []
    for i, s in enumerate(p.stages, 1):
        people = sorted(svc.directory.resolve(s.users, s.groups) - {subject.name})
        stages.append(f"stage {i} {s.name}: {s.quorum} of {', '.join(people) or 'nobody'}")
    return Explained(subject.name, decision, where_of(app, p.file, p.line), stages)


# ----- the audit log -------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    """The audit page's filters as given (to refill the form and build page links)."""

    request: str = ""
    actor: str = ""
    type: str = ""
    since: str = ""
    until: str = ""
    limit: int = AUDIT_PAGE

    def link(self, **cursor: int) -> str:
        pairs = {
            "request": self.request,
            "actor": self.actor,
            "type": self.type,
            "from": self.since,
            "to": self.until,
            "limit": str(self.limit) if self.limit != AUDIT_PAGE else "",
        }
        pairs.update({k: str(v) for k, v in cursor.items()})
        return "/admin/audit?" + urlencode({k: v for k, v in pairs.items() if v})


def audit_filters(
    app: App, me: SignedIn, values: Mapping[str, str]
) -> tuple[AuditFilters, AuditQuery]:
    """The filters of an audit page's query string, checked, and the query they make."""
    ref = bounded(values, "request", MAX_REF, "request").strip()
    actor = bounded(values, "actor", MAX_NAME, "actor").strip()
    type_ = bounded(values, "type", 64, "type").strip()
    since_text = bounded(values, "from", 10, "from").strip()
    until_text = bounded(values, "to", 10, "to").strip()
    limit_text = bounded(values, "limit", 4, "limit").strip()
    if type_ and type_ not in set(EventType):
        raise InvalidInput(f"there is no event type {type_!r}", field="type")
    since, until = parse_day(since_text, "from"), parse_day(until_text, "to")
    if since and until and since > until:
        raise InvalidInput("the range ends before it starts: swap from and to", field="to")
    limit = AUDIT_PAGE
    if limit_text:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= AUDIT_PAGE_MOST:
            raise InvalidInput(f"limit is a number from 1 to {AUDIT_PAGE_MOST}", field="limit")
        limit = int(limit_text)
    before = parse_seq(bounded(values, "before", 20, "before"), "before")
    after = parse_seq(bounded(values, "after", 20, "after"), "after")
    if before is not None and after is not None:
        raise InvalidInput("a page is before an event or after one, not both", field="after")
    request_id = views.resolve_id(app.services, me.user, ref) if ref else None
    query = AuditQuery(
        request_id=request_id,
        actor=actor or None,
        type=type_ or None,
        since=datetime(since.year, since.month, since.day, tzinfo=UTC) if since else None,
        until=(
            datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1)
            if until
            else None
        ),
        before=before,
        after=after,
    )
    return AuditFilters(ref, actor, type_, since_text, until_text, limit), query


def audit_rows(events: list[AuditEvent]) -> list[dict[str, Any]]:
    rows = []
    for e in events:
        try:
            data = e.payload_data()
            pretty = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)
        except (ValueError, RecursionError):
            pretty = e.payload
        if len(pretty) > PAYLOAD_SHOWN:
            more = len(pretty) - PAYLOAD_SHOWN
            pretty = pretty[:PAYLOAD_SHOWN] + f"\n… {more} more characters: see the export"
        brief = e.payload if len(e.payload) <= 140 else e.payload[:140] + "…"
        rows.append(
            {
                "seq": e.seq,
                "at": e.at[:19].replace("T", " ") + " UTC",
                "actor": e.actor,
                "type": e.type,
                "request_id": e.request_id,
                "brief": brief,
                "payload": pretty,
                "long": len(e.payload) > 140,
            }
        )
    return rows


def export_lines(app: App, after: int) -> AsyncIterator[bytes]:
    """The audit log as JSON lines (``views.export_audit``), read in a worker thread a
    batch at a time; the read ends when the download does, finished or not."""
    events = views.export_audit(app.services, after)

    def batch() -> bytes:
        out = []
        for ev in events:
            out.append(json.dumps(ev.as_dict(), ensure_ascii=False) + "\n")
            if len(out) >= 500:
                break
        return "".join(out).encode("utf-8")

    async def stream() -> AsyncIterator[bytes]:
        try:
            while chunk := await run_in_threadpool(batch):
                yield chunk
        finally:
            # ValueError: still reading in its thread (the download was cut); it closes
            # when that read ends and it is collected.
            with contextlib.suppress(ValueError):
                events.close()

    return stream()


# ----- the outbox ------------------------------------------------------------------------------


def outbox_row(row: Mapping[str, Any]) -> dict[str, Any]:
    payload = row.get("payload") or {}
    to = payload.get("to") if isinstance(payload, dict) else None
    event = payload.get("event") if isinstance(payload, dict) else None
    status = row["status"]
    if status == "pending" and row["attempts"] > 0:
        state = "retrying"
    elif status == "pending" and row["last_error"]:
        state = "queued again"  # a dead letter retried: its last error is from before
    elif status == "pending":
        state = "waiting"
    else:
        state = {"dead": "dead letter"}.get(status, status)
    return {
        "id": row["id"],
        "queued": moment(row["created_at"]),
        "channel": row["topic"],
        "request_id": row["request_id"],
        "event": event or "",
        "to": ", ".join(str(t) for t in to) if isinstance(to, list) else "",
        "attempts": row["attempts"],
        "next": moment(row["next_attempt_at"]) if status == "pending" else "",
        "error": row["last_error"] or "",
        "state": state,
        "dead": status == "dead",
    }


# ----- the router --------------------------------------------------------------------------------


def router(app: App) -> APIRouter:
    web = APIRouter(tags=["pages"], include_in_schema=False)
    svc = app.services
    for item in (
        NavItem("Policies", "/admin/policies", admin=True),
        NavItem("Audit", "/admin/audit", admin=True),
        NavItem("Outbox", "/admin/outbox", admin=True),
        NavItem("People", "/admin/people", admin=True),
        NavItem("Tokens", "/tokens"),
    ):
        add_nav(item)

    def policies_page(
        me: SignedIn,
        status: int = 200,
        form: Mapping[str, str] | None = None,
        result: Explained | None = None,
        error: str = "",
    ) -> HTMLResponse:
        ps = svc.policies
        return page(
            "admin_policies.html",
            "Policies",
            status,
            me=me,
            app=app,
            here="/admin/policies",
            digest=ps.digest,
            count=len(ps),
            default=ps.default.outcome.value,
            policies=policy_rows(app, ps),
            people=sorted(svc.directory.users),
            risks=RISKS,
            form=dict(form or {"requester": me.user.name}),
            result=result,
            error=error,
        )

    @web.get("/admin/policies", response_class=HTMLResponse)
    def policies(request: Request) -> Response:
        """The loaded policy set, in evaluation order, and the explain form."""
        me = admin_or_refusal(app, request)
        if not isinstance(me, SignedIn):
            return me
        return policies_page(me)

    @web.post("/admin/policies/explain", response_class=HTMLResponse)
    async def policies_explain(request: Request) -> Response:
        values = await form_of(request)
        return await run_in_threadpool(_explain, request, values)

    def _explain(request: Request, values: dict[str, str]) -> Response:
        me = admin_or_refusal(app, request, back="/admin/policies")
        if not isinstance(me, SignedIn):
            return me
        if not csrf_ok(me, values.get("csrf", "")[:MAX_CSRF]):
            return csrf_refused(app, me, "Not evaluated")
        shown = {k: v for k, v in values.items() if k != "csrf"}
        try:
            result = explain(app, me, values)
        except SignoffError as exc:
            return policies_page(me, exc.status, shown, error=exc.detail)
        return policies_page(me, form=shown, result=result)

    @web.get("/admin/audit", response_class=HTMLResponse)
    def audit(request: Request) -> Response:
        """Audit events newest first, filtered, a page at a time (cursors by seq)."""
        me = admin_or_refusal(app, request)
        if not isinstance(me, SignedIn):
            return me
        values = dict(request.query_params)
        # the filters as given, to refill the form when they are wrong
        given = {k: v[:MAX_REF].replace("\x00", "") for k, v in values.items()}
        filters = AuditFilters(
            request=given.get("request", ""),
            actor=given.get("actor", ""),
            type=given.get("type", ""),
            since=given.get("from", ""),
            until=given.get("to", ""),
        )
        context: dict[str, Any] = {"types": sorted(EventType), "events": [], "error": ""}
        status = 200
        try:
            filters, query = audit_filters(app, me, values)
            found = views.audit_search(svc, me.user, query, filters.limit + 1)
            if query.after is not None:
                newer = len(found) > filters.limit
                events = found[-filters.limit :] if newer else found
                older = True
            else:
                older = len(found) > filters.limit
                events = found[: filters.limit]
                newer = query.before is not None
            context["events"] = audit_rows(events)
            if events and newer:
                context["newer"] = filters.link(after=events[0].seq)
            if events and older:
                context["older"] = filters.link(before=events[-1].seq)
            if not events and (query.before is not None or query.after is not None):
                context["newest"] = filters.link()
            context["filtered"] = filters != AuditFilters(limit=filters.limit)
        except SignoffError as exc:
            status = exc.status
            context["error"] = exc.detail
        return page(
            "admin_audit.html",
            "Audit log",
            status,
            me=me,
            app=app,
            here="/admin/audit",
            filters=filters,
            **context,
        )

    @web.post("/admin/audit/verify", response_class=HTMLResponse)
    async def audit_verify(request: Request) -> Response:
        values = await form_of(request)
        return await run_in_threadpool(_verify, request, values)

    def _verify(request: Request, values: dict[str, str]) -> Response:
        me = admin_or_refusal(app, request, back="/admin/audit")
        if not isinstance(me, SignedIn):
            return me
        if not csrf_ok(me, values.get("csrf", "")[:MAX_CSRF]):
            return csrf_refused(app, me, "Not verified")
        report = views.audit_report(svc, me.user)
        chain = report.chain
        return page(
            "admin_verify.html",
            "The audit log is sound" if report.ok else "The audit log does not hold",
            me=me,
            app=app,
            here="/admin/audit",
            report=report,
            around=(
                AuditFilters(limit=20).link(before=chain.broken_at + 10)
                if chain.broken_at is not None
                else ""
            ),
        )

    @web.get("/admin/audit/export.jsonl")
    def audit_export(request: Request) -> Response:
        """The whole audit log as JSON lines, as ``signoff audit export`` writes it."""
        me = admin_or_refusal(app, request)
        if not isinstance(me, SignedIn):
            return me
        try:
            after = parse_seq(bounded(dict(request.query_params), "after", 20, "after"), "after")
        except SignoffError as exc:
            return problem_page(app, me, "No export", exc, "/admin/audit", "Back to the audit log")
        stamp = svc.clock.now().strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            export_lines(app, after or 0),
            media_type="application/x-ndjson",
            headers={
                "Content-Disposition": f'attachment; filename="signoff-audit-{stamp}.jsonl"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @web.get("/admin/outbox", response_class=HTMLResponse)
    def outbox(request: Request, retried: str = "") -> Response:
        """Notifications still to deliver, retrying, and given up (dead letters)."""
        me = admin_or_refusal(app, request)
        if not isinstance(me, SignedIn):
            return me
        counts = views.outbox_counts(svc)
        pending = [outbox_row(r) for r in views.outbox_rows(svc, "pending", OUTBOX_ROWS)]
        dead = [outbox_row(r) for r in views.outbox_rows(svc, "dead", OUTBOX_ROWS)]
        flash = ""
        if retried.isdigit() and len(retried) <= 10:
            flash = f"Notification {retried} is queued again: the dispatcher delivers it shortly."
        return page(
            "admin_outbox.html",
            "Outbox",
            me=me,
            app=app,
            here="/admin/outbox",
            tally=[
                (label, counts.get(key, 0))
                for key, label in (
                    ("pending", "to deliver"),
                    ("dead", "dead letters"),
                    ("delivered", "delivered"),
                )
            ],
            retrying=sum(1 for r in pending if r["attempts"] > 0),
            retrying_most=len(pending) >= OUTBOX_ROWS,
            pending=pending,
            dead=dead,
            most=OUTBOX_ROWS,
            flash=flash,
        )

    @web.post("/admin/outbox/{outbox_id}/retry", response_class=HTMLResponse)
    async def outbox_retry(request: Request, outbox_id: str) -> Response:
        values = await form_of(request)
        return await run_in_threadpool(_retry, request, outbox_id, values)

    def _retry(request: Request, outbox_id: str, values: dict[str, str]) -> Response:
        me = admin_or_refusal(app, request, back="/admin/outbox")
        if not isinstance(me, SignedIn):
            return me
        if not csrf_ok(me, values.get("csrf", "")[:MAX_CSRF]):
            return csrf_refused(app, me, "Not retried")
        try:
            if not outbox_id.isdigit() or len(outbox_id) > 10 or int(outbox_id) > MAX_INT32:
                raise NotFound(f"there is no outbox row {outbox_id[:20]!r}")
            row = requeue_dead_letter(svc, me.user, int(outbox_id))
        except SignoffError as exc:
            return problem_page(app, me, "Not retried", exc, "/admin/outbox", "Back to the outbox")
        return RedirectResponse(f"/admin/outbox?retried={row.id}", status_code=303)

    @web.get("/admin/people", response_class=HTMLResponse)
    def people(
        request: Request, signed_out: str = "", sessions: str = "", tokens: str = ""
    ) -> Response:
        """Who Signoff knows, and their groups (the directory, as loaded)."""
        me = admin_or_refusal(app, request)
        if not isinstance(me, SignedIn):
            return me
        directory = svc.directory
        flash = ""
        if signed_out in directory.users and all(
            v.isdigit() and len(v) <= 9 for v in (sessions, tokens)
        ):
            flash = (
                f"{signed_out} is signed out everywhere: {plural(int(sessions), 'session')} "
                f"ended, {plural(int(tokens), 'API token')} revoked."
            )
        users = [
            {
                "name": u.name,
                "email": u.email or "",
                "admin": u.admin,
                "disabled": u.disabled,
                "groups": sorted(u.groups),
                "notify": list(u.notify),
                "slack": u.slack_id or "",
                "teams": bool(u.teams_webhook),
            }
            for u in sorted(directory.users.values(), key=lambda u: u.name)
        ]
        groups = [(g, sorted(m)) for g, m in sorted(directory.groups.items())]
        return page(
            "admin_people.html",
            "People and groups",
            me=me,
            app=app,
            here="/admin/people",
            users=users,
            groups=groups,
            slack=any(u["slack"] for u in users),
            teams=any(u["teams"] for u in users),
            flash=flash,
        )

    @web.post("/admin/people/{name}/sign-out", response_class=HTMLResponse)
    async def person_sign_out(request: Request, name: str) -> Response:
        values = await form_of(request)
        return await run_in_threadpool(_sign_out, request, name, values)

    def _sign_out(request: Request, name: str, values: dict[str, str]) -> Response:
        me = admin_or_refusal(app, request, back="/admin/people")
        if not isinstance(me, SignedIn):
            return me
        if not csrf_ok(me, values.get("csrf", "")[:MAX_CSRF]):
            return csrf_refused(app, me, "Not signed out")
        try:
            if len(name) > MAX_NAME:
                raise NotFound("there is no such person")
            check_text(name, "name")
            ended = auth.sign_out_everywhere(svc, name, by=me.user)
        except SignoffError as exc:
            return problem_page(app, me, "Not signed out", exc, "/admin/people", "Back to people")
        query = urlencode(
            {"signed_out": name, "sessions": ended.sessions, "tokens": len(ended.tokens)}
        )
        return RedirectResponse(f"/admin/people?{query}", status_code=303)

    def tokens_page(
        me: SignedIn,
        status: int = 200,
        *,
        created: str = "",
        created_for: str = "",
        revoked: str = "",
        error: str = "",
        form: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        flash = ""
        tokens = [
            {
                "id": t.id,
                "user": t.user,
                "label": t.label,
                "created": moment(t.created_at),
                "revoked": moment(t.revoked_at) if t.revoked_at else "",
            }
            for t in views.api_tokens(svc, me.user)
        ]
        gone = next((t for t in tokens if revoked and t["id"] == revoked), None)
        if gone is not None:
            whose = f" of {gone['user']}" if gone["user"] != me.user.name else ""
            flash = f"The token {gone['label']!r}{whose} is revoked: it no longer authenticates."
        return page(
            "admin_tokens.html",
            "API tokens",
            status,
            me=me,
            app=app,
            here="/tokens",
            tokens=tokens,
            active=sum(1 for t in tokens if not t["revoked"]),
            people=sorted(svc.directory.users) if me.user.admin else [],
            created=created,
            created_for=created_for,
            flash=flash,
            error=error,
            form=dict(form or {"user": me.user.name}),
            max_label=auth.MAX_LABEL,
            api=app.settings.public_url.rstrip("/"),
        )

    @web.get("/tokens", response_class=HTMLResponse)
    def tokens(request: Request, revoked: str = "") -> Response:
        """API tokens: your own (admins: everyone's), made and revoked here."""
        me = signed_in(app, request)
        if me is None:
            return to_signin(request)
        return tokens_page(me, revoked=revoked[:MAX_REF])

    @web.post("/tokens", response_class=HTMLResponse)
    async def token_create(request: Request) -> Response:
        values = await form_of(request)
        return await run_in_threadpool(_create, request, values)

    def _create(request: Request, values: dict[str, str]) -> Response:
        me = signed_in(app, request)
        if me is None:
            return RedirectResponse("/signin?next=/tokens", status_code=303)
        if not csrf_ok(me, values.get("csrf", "")[:MAX_CSRF]):
            return csrf_refused(app, me, "No token was made")
        shown = {k: v for k, v in values.items() if k != "csrf"}
        try:
            label = bounded(values, "label", auth.MAX_LABEL, "label").strip()
            user = bounded(values, "user", MAX_NAME, "user").strip() or me.user.name
            if not label:
                raise InvalidInput(
                    "say what the token is for (a label), so it can be told apart later",
                    field="label",
                )
            if user not in svc.directory.users:
                raise InvalidInput(f"nobody named {user!r} is in the directory", field="user")
            token = auth.create_token(svc, user, label, by=me.user)
        except SignoffError as exc:
            return tokens_page(me, exc.status, error=exc.detail, form=shown)
        # Shown in this answer and nowhere else: it is stored hashed, so it cannot be
        # shown again (the page is not cached: no-store).
        return tokens_page(me, created=token, created_for=user)

    @web.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
    async def token_revoke(request: Request, token_id: str) -> Response:
        values = await form_of(request)
        return await run_in_threadpool(_revoke, request, token_id, values)

    def _revoke(request: Request, token_id: str, values: dict[str, str]) -> Response:
        me = signed_in(app, request)
        if me is None:
            return RedirectResponse("/signin?next=/tokens", status_code=303)
        if not csrf_ok(me, values.get("csrf", "")[:MAX_CSRF]):
            return csrf_refused(app, me, "Not revoked")
        try:
            if len(token_id) > MAX_REF:
                raise NotFound("there is no such API token")
            check_text(token_id, "token id")
            auth.revoke_token(svc, me.user, token_id)
        except SignoffError as exc:
            return problem_page(app, me, "Not revoked", exc, "/tokens", "Back to the tokens")
        return RedirectResponse(f"/tokens?revoked={quote(token_id)}", status_code=303)

    return web
