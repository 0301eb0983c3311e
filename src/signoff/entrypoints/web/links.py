"""Approve/deny links from messages: a confirmation page (GET, changes nothing) and the
vote it posts (POST). Human-facing, so answers are HTML pages, errors included."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse

from signoff.adapters.channels.messages import needed_line
from signoff.bootstrap import App
from signoff.domain.errors import SignoffError, StepUpRequired
from signoff.domain.requests import MAX_TEXT, Request, Status, step_up_detail
from signoff.entrypoints.web.pages import page, refused, request_context
from signoff.services import requests as use_cases
from signoff.services import sessions, views
from signoff.services.messages import RequestSummary


def _next(summary: RequestSummary, r: Request) -> str:
    """What happens now: "Stage 2 of 2 (security) is now asked: 1 more approval from
    erin.", "1 more approval from carol.", or how it ended."""
    stage = summary.stage
    if r.status is not Status.PENDING or stage is None:
        outcome = r.outcome or f"the request is {r.status.value.replace('_', ' ')}"
        return outcome[:1].upper() + outcome[1:] + "."
    needed = needed_line(summary)
    voted_in = max((v.stage for v in r.votes), default=0) + 1
    if stage.number > 1 and voted_in < stage.number:
        return f"Stage {stage.number} of {stage.of} ({stage.name}) is now asked: {needed}."
    return needed[:1].upper() + needed[1:] + "."


def passkey_page(app: App, r: Request, detail: str) -> HTMLResponse:
    """A vote that needs a passkey, answered with where to finish it (nothing counted)."""
    where = f"/requests/{r.id}"
    return page(
        "message.html",
        "Finish with your passkey",
        403,
        lines=[detail[:1].upper() + detail[1:] + ".", "Nothing was recorded."],
        back=where,
        back_label="Open the request to approve or deny with your passkey",
        **request_context(app, r),
    )


def router(app: App) -> APIRouter:
    api = APIRouter(tags=["links"])
    svc = app.services
    links = app.links

    @api.get("/links/{token}", response_class=HTMLResponse)
    def confirm(token: str) -> HTMLResponse:
        """Show what the link would do; voting needs the button (POST)."""
        try:
            claims = links.verify(token)
            with svc.uow(write=False) as uow:
                if uow.links.used(str(claims["jti"])):
                    return page(
                        "message.html",
                        "This link was already used",
                        409,
                        lines=["Nothing was changed."],
                    )
            approver = sessions.person(svc, str(claims["sub"]))
            approver.require_enabled("vote")  # said now, not after the button
            r = views.request_for(svc, approver, str(claims["rid"]))
            use_cases.looked(svc, approver, r, str(claims.get("ch") or "link"))
        except SignoffError as exc:
            return refused("This link cannot be used", exc)
        if r.step_up_needed() == "passkey" and r.vote_refusal(approver.name) is None:
            return passkey_page(app, r, step_up_detail(r.id, svc.public_url))
        verb = "Approve" if claims["dec"] == "approve" else "Deny"
        return page(
            "confirm.html",
            f"{verb} this request?",
            verb=verb,
            person=approver.name,
            max_text=MAX_TEXT,
            **request_context(app, r),
        )

    @api.post("/links/{token}", response_class=HTMLResponse)
    def vote(token: str, comment: Annotated[str, Form(max_length=MAX_TEXT)] = "") -> HTMLResponse:
        """Cast the vote the link stands for, once."""
        try:
            claims = links.verify(token)
            r = use_cases.vote_by_link(svc, claims, comment)
        except StepUpRequired as exc:
            approver = sessions.person(svc, str(claims["sub"]))
            r = views.request_for(svc, approver, str(claims["rid"]))
            return passkey_page(app, r, exc.detail)
        except SignoffError as exc:
            return refused("This link cannot be used", exc)
        done = "approval" if claims["dec"] == "approve" else "denial"
        context = request_context(app, r)
        return page(
            "message.html", f"Your {done} was recorded", lines=[_next(context["r"], r)], **context
        )

    return api
