"""Approve/deny links from messages: a confirmation page (GET, changes nothing) and the
vote it posts (POST). Human-facing, so answers are HTML pages, errors included."""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse

from signoff.bootstrap import App
from signoff.domain.errors import SignoffError
from signoff.domain.requests import MAX_TEXT, Request
from signoff.services import requests as use_cases
from signoff.services import views


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    e = html.escape
    return HTMLResponse(
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'><title>{e(title)} · Signoff</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;"
        "padding:0 1rem}th{text-align:left;padding-right:1rem;vertical-align:top}"
        "pre{background:#f4f4f4;padding:.5rem;overflow:auto}button{font-size:1.1rem;"
        "padding:.4rem 1.2rem}</style></head>"
        f"<body><h1>{e(title)}</h1>{body}</body></html>",
        status_code=status,
    )


def _context(r: Request) -> str:
    e = html.escape
    rows = [
        ("Action", f"{r.action.type} on {r.action.target}"),
        ("Requester", r.requester),
        ("Reason", r.reason or "-"),
        ("Ticket", r.ticket or "-"),
        ("Policy", r.policy_name),
        ("Status", r.status.value),
        ("Still needed", str(r.still_needed())),
    ]
    cells = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    params = "".join(
        f"<p><b>{e(str(k))}</b></p><pre>{e(str(v))}</pre>" for k, v in r.action.params.items()
    )
    return f"<table>{cells}</table>{params}"


def _refused(exc: SignoffError) -> HTMLResponse:
    return _page("This link cannot be used", f"<p>{html.escape(exc.detail)}</p>", exc.status)


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
                    return _page("This link was already used", "<p>Nothing was changed.</p>", 409)
            approver = svc.directory.user(str(claims["sub"]))
            r = views.request_for(svc, approver, str(claims["rid"]))
        except SignoffError as exc:
            return _refused(exc)
        verb = "Approve" if claims["dec"] == "approve" else "Deny"
        e = html.escape
        form = (
            f'<form method="post"><p><label>Comment<br><textarea name="comment" rows=3 '
            f'cols=50></textarea></label></p><button type="submit">{verb} as '
            f"{e(str(claims['sub']))}</button></form>"
        )
        return _page(f"{verb} this request?", _context(r) + form)

    @api.post("/links/{token}", response_class=HTMLResponse)
    def vote(token: str, comment: Annotated[str, Form(max_length=MAX_TEXT)] = "") -> HTMLResponse:
        """Cast the vote the link stands for, once."""
        try:
            claims = links.verify(token)
            r = use_cases.vote_by_link(svc, claims, comment)
        except SignoffError as exc:
            return _refused(exc)
        done = "approval" if claims["dec"] == "approve" else "denial"
        return _page(f"Your {done} was recorded", _context(r))

    return api
