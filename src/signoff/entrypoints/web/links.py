"""Approve/deny links from messages: a confirmation page (GET, changes nothing) and the
vote it posts (POST). Human-facing, so answers are HTML pages, errors included."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse

from signoff.bootstrap import App
from signoff.domain.errors import SignoffError
from signoff.domain.requests import MAX_TEXT
from signoff.entrypoints.web.pages import page, refused, request_context
from signoff.services import requests as use_cases
from signoff.services import views


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
            approver = svc.directory.user(str(claims["sub"]))
            r = views.request_for(svc, approver, str(claims["rid"]))
        except SignoffError as exc:
            return refused("This link cannot be used", exc)
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
        except SignoffError as exc:
            return refused("This link cannot be used", exc)
        done = "approval" if claims["dec"] == "approve" else "denial"
        return page("message.html", f"Your {done} was recorded", **request_context(app, r))

    return api
