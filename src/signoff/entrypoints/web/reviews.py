"""The approver's pages: the inbox (what awaits my vote), the request page (the whole
action, its review and history, Approve and Deny), and their live updates.

Votes go through the same use case as the API (``cast_vote``), so every rule holds
here too: no self-approval, one person one vote, only the current stage's approvers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from signoff.adapters.channels.messages import needed_line, said, when
from signoff.adapters.event_bus import ANY
from signoff.adapters.webauthn import MAX_ANSWER
from signoff.bootstrap import App
from signoff.domain.durations import parse_duration
from signoff.domain.errors import (
    AlreadyVoted,
    InvalidInput,
    InvalidTransition,
    SelfApproval,
    SignoffError,
)
from signoff.domain.requests import FINAL, MAX_TEXT, Decision, Status
from signoff.domain.requests import Request as SignoffRequest
from signoff.entrypoints.web.pages import (
    COUNTS,
    CSRF_REFUSED,
    NavItem,
    add_nav,
    page,
    refused,
    request_context,
    safe_next,
    signed_in,
    to_signin,
)
from signoff.entrypoints.web.render import action_blocks
from signoff.entrypoints.web.requesting import list_item, requester_actions
from signoff.services import passkeys, sessions, views
from signoff.services import requests as use_cases
from signoff.services.messages import RequestSummary, summarize
from signoff.services.ports import RequestBrief
from signoff.services.sessions import SignedIn

INBOX_PAGE = 100
HISTORY_PAGE = 100


@dataclass(frozen=True)
class InboxItem:
    id: str
    type: str
    target: str
    requester: str
    reason: str
    ticket: str | None
    policy: str
    risk: str | None
    first_param: str
    progress: str
    left: str
    deadline: datetime | None
    created_at: datetime


def time_left(deadline: datetime | None, now: datetime) -> str:
    if deadline is None:
        return "no deadline"
    seconds = int((deadline - now).total_seconds())
    if seconds <= 0:
        return "deadline passed"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours >= 48:
        return f"{hours // 24} days left"
    return f"{hours}h {minutes:02d}m left" if hours else f"{max(minutes, 1)} min left"


def _item(r: SignoffRequest, s: RequestSummary, now: datetime) -> InboxItem:
    stage = s.stage
    where = f"stage {stage.number} of {stage.of}: {stage.name} · " if stage else ""
    first = next(iter(s.params.values()), "")
    return InboxItem(
        id=r.id,
        type=s.type,
        target=s.target,
        requester=s.requester,
        reason=s.reason,
        ticket=s.ticket,
        policy=s.policy,
        risk=s.risk,
        first_param=first[:300],
        progress=where + needed_line(s),
        left=time_left(r.deadline_at, now),
        deadline=r.deadline_at,
        created_at=r.created_at,
    )


def why_not(r: SignoffRequest, person: str) -> str | None:
    """Why this person cannot vote on the request now, or None if they can: the
    domain's refusal (``Request.vote_refusal``), said to the person it concerns."""
    refusal = r.vote_refusal(person)
    if refusal is None:
        return None
    if isinstance(refusal, InvalidTransition):
        return f"The request is {said(r.status.value)}: nothing to decide."
    if isinstance(refusal, SelfApproval):
        return "You asked for this: someone else decides."
    if isinstance(refusal, AlreadyVoted):
        mine = next(v for v in r.votes if v.voter == person)
        return f"You already {mine.decision.done} it."
    later = [i for i in range(r.current_stage + 1, len(r.stages)) if person in r.eligible(i)]
    if later:
        i = later[0]
        return f"You approve in stage {i + 1} ({r.stages[i].name}), which is not active yet."
    stage = r.stages[r.current_stage]
    return f"You are not an approver of stage {r.current_stage + 1} ({stage.name})."


def _stages(r: SignoffRequest, now: datetime) -> list[dict[str, Any]]:
    out = []
    for i, plan in enumerate(r.stages):
        votes = [
            {
                "voter": v.voter,
                "decision": v.decision.done,
                "comment": v.comment,
                "at": when(v.at.isoformat()),
            }
            for v in r.votes
            if v.stage == i
        ]
        current = i == r.current_stage and r.status is Status.PENDING
        if i < r.current_stage or (r.status is not Status.PENDING and votes):
            state, text = "done", "decided"
        elif current:
            state, text = "active", "asking now"
        elif r.status is Status.PENDING:
            state, text = "waiting", "not active yet"
        else:
            state, text = "skipped", "never reached"
        clocks = []
        if current:
            reminder = r.next_reminder_at
            if reminder is not None:
                clocks.append(f"reminder at {when(reminder.isoformat())}")
            deadline = r.deadline_at
            if deadline is not None:
                joined = plan.escalate_to - plan.approvers
                then = (
                    f"escalates to {', '.join(sorted(joined))}"
                    if joined and not r.escalated(i)
                    else ("is denied" if r.on_timeout == "deny" else "times out")
                )
                clocks.append(
                    f"{then} at {when(deadline.isoformat())} ({time_left(deadline, now)})"
                )
        voted = {v.voter for v in r.votes}
        out.append(
            {
                "number": i + 1,
                "name": plan.name,
                "quorum": plan.quorum,
                "passkey": plan.approve_with == "passkey",
                "approvals": sorted(r.approvals_in(i)),
                "votes": votes,
                "state": state,
                "state_text": text,
                "can_vote": sorted(r.eligible(i) - voted - {r.requester}) if current else [],
                "joined": sorted(plan.escalate_to - plan.approvers) if r.escalated(i) else [],
                "clocks": clocks,
            }
        )
    return out


def _timeline(events: list[Any]) -> list[dict[str, str]]:
    return [
        {"at": when(str(e.at)), "what": str(e.type).replace("_", " "), "actor": e.actor}
        for e in events
    ]


def _grant(r: SignoffRequest) -> str | None:
    g = r.grant
    if g is None:
        return None
    if g.revoked_at is not None:
        return f"Revoked at {when(g.revoked_at.isoformat())}."
    return f"{g.uses_left} of {g.uses_total} use(s) left; expires {when(g.expires_at.isoformat())}."


def _executions(app: App, me: SignedIn, r: SignoffRequest) -> list[dict[str, Any]]:
    if not r.may_execute(me.user.name, me.user.admin):
        return []
    shown = []
    for x in views.executions_of(app.services, me.user, r.id):
        output = x.get("output") or {}
        text = output.get("stdout") or output.get("body") or output.get("status") or ""
        shown.append(
            {
                "ok": x.get("ok"),
                "actor": x.get("actor"),
                "at": when(str(x.get("finished_at") or x.get("started_at"))),
                "summary": x.get("summary"),
                "columns": output.get("columns"),
                "rows": output.get("rows") or [],
                "text": str(text),
            }
        )
    return shown


def _count_inbox(app: App, me: SignedIn) -> int:
    return views.count_awaiting(app.services, me.user)


def router(app: App) -> APIRouter:
    web = APIRouter(tags=["pages"], include_in_schema=False)
    svc = app.services
    ticket_url = app.settings.ticket_url
    add_nav(NavItem("Inbox", "/", count_key="inbox"))
    add_nav(NavItem("I decided", "/decided"))
    add_nav(NavItem("Watching", "/watching"))
    COUNTS["inbox"] = _count_inbox

    @web.get("/", response_class=HTMLResponse)
    def inbox(
        request: Request,
        policy: str = "",
        target: str = "",
        requester: str = "",
        risk: str = "",
        age: str = "",
        start: int = 0,
    ) -> Response:
        """What awaits my vote, the nearest deadline first, a page at a time."""
        me = signed_in(app, request)
        if me is None:
            return to_signin(request)
        now = svc.clock.now()
        older: timedelta | None = None
        if age:
            try:
                older = parse_duration(age[:20])
            except ValueError:
                older = None

        def keep(b: RequestBrief) -> bool:
            return (
                (not policy or b.policy == policy)
                and (not target or b.target == target)
                and (not requester or b.requester == requester)
                and (not risk or b.risk == risk)
                and (older is None or now - b.created_at >= older)
            )

        start = max(0, min(start, 10**6))
        found = views.inbox(svc, me.user, keep, start, INBOX_PAGE)
        items = [_item(r, summarize(r, analysis=False), now) for r in found.items]
        filtered = found.matching != found.total
        base = {
            "policy": policy,
            "target": target,
            "requester": requester,
            "risk": risk,
            "age": age,
        }
        more = start + INBOX_PAGE < found.matching
        return page(
            "inbox.html",
            "Needs your review",
            me=me,
            app=app,
            known={"inbox": found.total},
            here="/",
            live="/live",
            items=items,
            choices={
                "policy": found.policies,
                "target": found.targets,
                "requester": found.requesters,
            },
            filters=base,
            shown_from=start + 1,
            shown_to=start + len(items),
            matching=found.matching,
            next_page="?" + urlencode({**base, "start": start + INBOX_PAGE}) if more else "",
            previous_page=(
                "?" + urlencode({**base, "start": max(0, start - INBOX_PAGE)}) if start else ""
            ),
            empty="Nothing matches these filters." if filtered else "Nothing awaits your vote.",
        )

    @web.get("/decided", response_class=HTMLResponse)
    def decided(request: Request) -> Response:
        """What I voted on, most recent first: how each ended."""
        me = signed_in(app, request)
        if me is None:
            return to_signin(request)
        found = views.decided_by(svc, me.user, HISTORY_PAGE)
        mine = {r.id: next((v for v in r.votes if v.voter == me.user.name), None) for r in found}
        items = [
            (list_item(r, svc.targets), f"you {v.decision.done} it {when(v.at.isoformat())}")
            for r in found
            if (v := mine[r.id]) is not None
        ]
        return page(
            "history.html",
            "I decided",
            me=me,
            app=app,
            here="/decided",
            live="/live",
            items=items,
            empty="You have not voted on anything yet.",
        )

    @web.get("/watching", response_class=HTMLResponse)
    def watching(request: Request, cursor: str = "") -> Response:
        """Every request I may see that someone else asked for, newest first."""
        me = signed_in(app, request)
        if me is None:
            return to_signin(request)
        try:
            found = views.list_requests(svc, me.user, cursor=cursor[:1000] or None, limit=100)
        except SignoffError as exc:
            return refused("These requests cannot be listed", exc, me)
        items = [(list_item(r, svc.targets), f"asked by {r.requester}") for r in found.items]
        return page(
            "history.html",
            "Watching",
            me=me,
            app=app,
            here="/watching",
            live="/live",
            items=items,
            older=f"/watching?cursor={found.next_cursor}" if found.next_cursor else "",
            empty="Nothing you may see yet.",
        )

    @web.get("/requests/{request_id}", response_class=HTMLResponse)
    def request_page(request: Request, request_id: str, t: str = "", done: str = "") -> Response:
        """One request: for a signed-in person, everything and the vote; for the person
        a message's Details link was signed for, the request read-only."""
        if len(request_id) > 100 or len(t) > 4000:
            return page("message.html", "No such page", 404, lines=["Nothing is here."])
        me = signed_in(app, request)
        if me is None and t:
            return _by_view_link(app, request_id, t)
        if me is None:
            return to_signin(request)
        try:
            rid = views.resolve_id(svc, me.user, request_id)
            found = views.request_history(svc, me.user, rid)
            r = found.request
            executions = _executions(app, me, r)
        except SignoffError as exc:
            return refused("This request cannot be shown", exc, me)
        if rid != request_id:
            return RedirectResponse(f"/requests/{rid}", status_code=303)
        now = svc.clock.now()
        use_cases.looked(svc, me.user, r, "web")
        reason = why_not(r, me.user.name)
        step_up = r.step_up_needed() if reason is None else None
        has_passkey = step_up == "passkey" and bool(passkeys.list_passkeys(svc, me.user))
        flash = {"approve": "Your approval was recorded.", "deny": "Your denial was recorded."}
        context = request_context(app, r)
        return page(
            "request_full.html",
            f"{r.action.type} on {r.action.target}",
            me=me,
            app=app,
            live=None if r.status in FINAL else f"/requests/{rid}/live",
            created=when(r.created_at.isoformat()),
            flash=flash.get(done, ""),
            blocks=action_blocks(r.action.params, r.context, r.action.type, r.action.target),
            can_vote=reason is None,
            why_not=reason,
            step_up=step_up,
            has_passkey=has_passkey,
            max_text=MAX_TEXT,
            stages=_stages(r, now),
            timeline=_timeline(found.events),
            grant=_grant(r),
            executions=executions,
            ticket_url=ticket_url.replace("{ticket}", r.ticket) if ticket_url and r.ticket else "",
            commands=_commands(me.user.name, r, context["r"]),
            **context,
            **requester_actions(app, me, r, done),
        )

    @web.post("/requests/{request_id}/vote", response_class=HTMLResponse)
    def vote(
        request: Request,
        request_id: str,
        decision: Annotated[str, Form(max_length=10)] = "",
        comment: Annotated[str, Form(max_length=MAX_TEXT)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
        passkey: Annotated[str, Form(max_length=MAX_ANSWER)] = "",
    ) -> Response:
        """A vote from the page; on a passkey stage ``passkey`` is the browser's
        assertion (``assets/passkeys.js``), which the use case checks."""
        me = signed_in(app, request)
        if me is None:
            return to_signin(request)
        if not sessions.csrf_ok(me, csrf):
            return page("message.html", "Not recorded", 403, me=me, app=app, lines=[CSRF_REFUSED])
        try:
            if decision not in ("approve", "deny"):
                raise InvalidInput("choose Approve or Deny", field="decision")
            if decision == "deny" and not comment.strip():
                raise InvalidInput("say why you deny it: the requester reads it", field="comment")
            r = use_cases.cast_vote(
                svc,
                me.user,
                request_id,
                Decision(decision),
                comment,
                channel="web",
                passkey=passkey or None,
            )
        except SignoffError as exc:
            return page(
                "message.html",
                "Your vote was not recorded",
                exc.status,
                me=me,
                app=app,
                lines=[exc.detail],
                back=f"/requests/{request_id}",
            )
        return RedirectResponse(f"/requests/{r.id}?done={decision}", status_code=303)

    @web.get("/requests/{request_id}/live")
    async def request_live(request: Request, request_id: str) -> Response:
        me = await run_in_threadpool(signed_in, app, request)
        if me is None or len(request_id) > 100:
            return Response(status_code=401)
        try:
            await run_in_threadpool(views.request_for, svc, me.user, request_id)
        except SignoffError as exc:
            return Response(status_code=exc.status)
        return EventSourceResponse(
            _changes(app, request_id), ping=int(max(1, app.settings.sse_keepalive_seconds))
        )

    @web.get("/live")
    async def inbox_live(request: Request) -> Response:
        me = await run_in_threadpool(signed_in, app, request)
        if me is None:
            return Response(status_code=401)
        return EventSourceResponse(
            _changes(app, ANY), ping=int(max(1, app.settings.sse_keepalive_seconds))
        )

    return web


async def _changes(app: App, key: str) -> AsyncIterator[ServerSentEvent]:
    """A "changed" event whenever the request (or, for ``ANY``, any request) changes;
    the page then fetches its live parts again."""
    wake = app.bus.subscribe(key)
    try:
        while True:
            await wake.wait()
            wake.clear()
            await asyncio.sleep(0.05)  # one refresh for a burst of changes
            wake.clear()
            yield ServerSentEvent(data="{}", event="changed")
    finally:
        app.bus.unsubscribe(key, wake)


def _commands(person: str, r: SignoffRequest, summary: RequestSummary) -> list[str]:
    """Of the commands a message would print about the request (``summary.commands``),
    those this person can run now."""
    found = summary.commands
    keys = []
    if person in r.awaiting():
        keys += ["approve", "deny"]
    if person == r.requester:
        keys += ["cancel", "execute", "redeem" if "redeem" in found else "token"]
    return [found[k] for k in keys if k in found]


def _by_view_link(app: App, request_id: str, token: str) -> HTMLResponse:
    """The request, read-only, for the person a message's Details link was made for."""
    svc = app.services
    try:
        claims = app.links.verify_view(token)
        if claims["rid"] != request_id:
            return page(
                "message.html",
                "This link is for another request",
                403,
                lines=["Open the link from your message as it was sent."],
            )
        person = sessions.person(svc, str(claims["sub"]))
        r = views.request_for(svc, person, request_id)
        use_cases.looked(svc, person, r, str(claims.get("ch") or "link"))
    except SignoffError as exc:
        return refused("This link cannot be used", exc)
    signin = f"/signin?next={safe_next(f'/requests/{r.id}')}"
    context = request_context(app, r)
    return page(
        "request.html",
        f"{r.action.type} on {r.action.target}",
        lead=f"Request {r.id}, shown to {person.name}.",
        commands=_commands(person.name, r, context["r"]),
        signin=signin,
        **context,
    )
