"""The flow dashboard (``/flow``): the report of ``services.analytics`` as a page, with
charts drawn on the server as SVG (no script, no charting library): outcomes by policy,
time to decision, approvers' load, and the findings first, each with its evidence and a
suggested change. Admins see everything; anyone else their own figures as an approver."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape
from starlette.datastructures import UploadFile

from signoff.adapters.policy_files import MAX_FILE_BYTES, MAX_SENT_FILES, load_sent_policy_set
from signoff.bootstrap import App
from signoff.domain.durations import brief
from signoff.domain.errors import InvalidInput, PolicyError, SignoffError
from signoff.entrypoints.web.admin import admin_or_refusal
from signoff.entrypoints.web.pages import (
    CSRF_REFUSED,
    NavItem,
    add_nav,
    page,
    signed_in,
    templates,
    to_signin,
)
from signoff.services import analytics, policy_replay
from signoff.services.sessions import SignedIn, csrf_ok

WINDOWS = ("24h", "7d", "30d", "90d")
REPLAY_WINDOWS = ("7d", "30d", "90d", "365d")
# Outcomes of a policy's requests, in the order their bar segments are drawn.
OUTCOMES = (
    ("allowed", "allowed by policy"),
    ("approved", "approved"),
    ("denied", "denied by approvers"),
    ("denied_by_policy", "denied by policy"),
    ("timed_out", "timed out"),
    ("cancelled", "cancelled"),
    ("pending", "pending"),
)
BAR_WIDTH = 520  # the SVG's drawing width for bars, in its own units
ROW = 26


@dataclass(frozen=True)
class Segment:
    key: str
    label: str
    value: int
    x: float
    width: float


@dataclass(frozen=True)
class Bar:
    label: str
    y: int
    segments: list[Segment]
    total: str


def code_spans(text: str) -> Markup:
    """Text with its `backquoted` parts as code, the rest escaped."""
    parts = str(escape(text)).split("`")
    return Markup("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


templates.env.filters["code_spans"] = code_spans


def outcome_bars(policies: list[analytics.PolicyFigures]) -> list[Bar]:
    """One stacked bar per policy, scaled to the policy with the most requests."""
    most = max((p.requests for p in policies), default=0) or 1
    bars = []
    for i, p in enumerate(policies):
        x = 0.0
        segments = []
        for key, label in OUTCOMES:
            value = int(getattr(p, key))
            if value:
                width = value / most * BAR_WIDTH
                segments.append(Segment(key, label, value, round(x, 2), round(width, 2)))
                x += width
        bars.append(Bar(p.name, i * ROW, segments, str(p.requests)))
    return bars


def time_bars(policies: list[analytics.PolicyFigures]) -> list[Bar]:
    """p50 and p90 time to decision of reviewed requests, on one scale."""
    timed = [p for p in policies if p.decision_p90_s is not None]
    most = max((p.decision_p90_s or 0 for p in timed), default=0) or 1
    bars = []
    for i, p in enumerate(timed):
        p50, p90 = p.decision_p50_s or 0, p.decision_p90_s or 0
        segments = [
            Segment("p50", f"p50 {brief(p50)}", 0, 0, round(p50 / most * BAR_WIDTH, 2)),
            Segment(
                "p90",
                f"p90 {brief(p90)}",
                0,
                round(p50 / most * BAR_WIDTH, 2),
                round((p90 - p50) / most * BAR_WIDTH, 2),
            ),
        ]
        bars.append(Bar(p.name, i * ROW, segments, f"{brief(p50)} / {brief(p90)}"))
    return bars


def load_bars(approvers: list[analytics.ApproverFigures]) -> list[Bar]:
    """Asks received and votes cast, per approver."""
    most = max((a.asks for a in approvers), default=0) or 1
    bars = []
    for i, a in enumerate(approvers):
        voted = min(a.votes, a.asks) / most * BAR_WIDTH
        unanswered = max(a.asks - a.votes, 0) / most * BAR_WIDTH
        segments = [
            Segment("votes", "voted", a.votes, 0, round(voted, 2)),
            Segment(
                "unanswered",
                "asked, no vote",
                a.asks - a.votes,
                round(voted, 2),
                round(unanswered, 2),
            ),
        ]
        bars.append(Bar(a.name, i * ROW, segments, f"{a.votes} of {a.asks}"))
    return bars


def router(app: App) -> APIRouter:
    web = APIRouter(tags=["pages"], include_in_schema=False)
    svc = app.services
    add_nav(NavItem("Flow", "/flow"))

    @web.get("/flow", response_class=HTMLResponse)
    def flow(request: Request, since: str = "30d", policy: str = "") -> Response:
        me = signed_in(app, request)
        if me is None:
            return to_signin(request)
        form = {"since": since[:40], "policy": policy[:100]}
        try:
            if len(since) > 40 or len(policy) > 100:
                raise InvalidInput("the window or the policy name is too long")
            start, end = analytics.window(svc.clock.now(), since)
            rep = analytics.report(svc, me.user, start, end, policy or None)
        except SignoffError as exc:
            return page(
                "flow.html",
                "Approval flow",
                exc.status,
                me=me,
                app=app,
                here="/flow",
                error=exc.detail,
                form=form,
                windows=WINDOWS,
                policy_names=[p.name for p in svc.policies.policies],
            )
        return page(
            "flow.html",
            "Approval flow" if me.user.admin else "Your approvals",
            me=me,
            app=app,
            here="/flow",
            rep=rep,
            form=form,
            windows=WINDOWS,
            policy_names=[p.name for p in svc.policies.policies],
            outcomes=OUTCOMES,
            kinds=analytics.FINDING_KINDS,
            outcome_bars=outcome_bars(rep.policies),
            time_bars=time_bars(rep.policies),
            load_bars=load_bars(rep.approvers),
            width=BAR_WIDTH,
            row=ROW,
            brief=brief,
            window=f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
        )

    @web.get("/flow/replay", response_class=HTMLResponse)
    def replay_form(request: Request) -> Response:
        me = admin_or_refusal(app, request)
        if not isinstance(me, SignedIn):
            return me
        return page(
            "flow_replay.html",
            "Replay a policy change",
            me=me,
            app=app,
            here="/flow",
            windows=REPLAY_WINDOWS,
            form={"since": "30d"},
        )

    @web.post("/flow/replay", response_class=HTMLResponse)
    async def replay(request: Request) -> Response:
        """Admins: upload a candidate policy set's files; see what it would have changed
        over the stored asks of a window (the same replay as ``signoff policy replay``)."""
        me = admin_or_refusal(app, request)
        if not isinstance(me, SignedIn):
            return me
        form = await request.form(max_files=MAX_SENT_FILES, max_fields=10)
        since = str(form.get("since") or "30d")[:40]
        if not csrf_ok(me, str(form.get("csrf") or "")[:200]):
            return page("message.html", "Not replayed", 403, me=me, app=app, lines=[CSRF_REFUSED])
        files: dict[str, str] = {}
        error = ""
        for upload in form.getlist("files"):
            if not isinstance(upload, UploadFile) or not upload.filename:
                continue
            data = await upload.read(MAX_FILE_BYTES + 1)
            name = Path(upload.filename).name[:100]
            if len(data) > MAX_FILE_BYTES:
                error = f"{name} is larger than {MAX_FILE_BYTES:,} bytes"
                break
            try:
                files[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                error = f"{name} is not UTF-8 text"
                break

        def answer(status: int = 200, **shown: Any) -> Response:
            return page(
                "flow_replay.html",
                "Replay a policy change",
                status,
                me=me,
                app=app,
                here="/flow",
                windows=REPLAY_WINDOWS,
                form={"since": since},
                **shown,
            )

        if not error and not files:
            error = "choose the candidate's policy files (*.yaml)"
        if error:
            return answer(422, error=error)
        try:
            candidate = await run_in_threadpool(load_sent_policy_set, files, svc.directory)
            start, end = analytics.window(svc.clock.now(), since)
            result = await run_in_threadpool(
                policy_replay.replay, svc, me.user, candidate, start, end
            )
        except PolicyError as exc:
            return answer(422, problems=[str(p) for p in exc.problems])
        except SignoffError as exc:
            return answer(exc.status, error=exc.detail)
        return answer(
            result=result,
            files=sorted(files),
            candidate_digest=candidate.digest,
            window=f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
        )

    return web
