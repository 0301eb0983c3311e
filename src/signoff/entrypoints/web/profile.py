"""The profile page (``/profile``): one's passkeys, to add (WebAuthn, named), list and
remove; and the passkey options of a vote on a stage with ``approve_with: passkey``.

The ceremonies run in ``assets/passkeys.js`` (no inline script): it asks the server for
the options (a new single-use challenge, kept on the server), calls
``navigator.credentials.create``/``get``, and sends the browser's answer with the form,
which the server checks (``services/passkeys.py``). The options endpoints answer JSON
(``{"detail": ...}`` when refused), CSRF-checked like every form.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from signoff.adapters.channels.messages import when
from signoff.adapters.webauthn import MAX_ANSWER
from signoff.bootstrap import App
from signoff.domain.errors import SignoffError
from signoff.domain.requests import Decision
from signoff.entrypoints.web.pages import (
    CSRF_REFUSED,
    HEADERS,
    NavItem,
    add_nav,
    page,
    signed_in,
    to_signin,
)
from signoff.services import passkeys, sessions
from signoff.services.passkeys import MAX_NAME
from signoff.services.sessions import SignedIn

JSON_HEADERS = {k: v for k, v in HEADERS.items() if k != "Content-Security-Policy"}


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=JSON_HEADERS)


def router(app: App) -> APIRouter:
    web = APIRouter(tags=["pages"], include_in_schema=False)
    svc = app.services
    add_nav(NavItem("Profile", "/profile"))

    def profile_page(
        me: SignedIn, status: int = 200, error: str = "", flash: str = "", name: str = ""
    ) -> HTMLResponse:
        mine = passkeys.list_passkeys(svc, me.user)
        return page(
            "profile.html",
            "Your profile",
            status,
            me=me,
            app=app,
            here="/profile",
            passkeys=[
                {
                    "id": p.id,
                    "name": p.name,
                    "credential": p.short_id,
                    "created": when(p.created_at.isoformat()),
                    "used": when(p.last_used_at.isoformat()) if p.last_used_at else "never",
                }
                for p in mine
            ],
            groups=sorted(me.user.groups),
            error=error,
            flash=flash,
            may_enroll=passkeys.may_enroll(svc, me.signed_in_at),
            minutes=int(passkeys.ENROLL_AFTER_SIGN_IN.total_seconds() // 60),
            name=name,
            max_name=MAX_NAME,
        )

    @web.get("/profile", response_class=HTMLResponse)
    def profile(request: Request, done: str = "") -> Response:
        me = signed_in(app, request)
        if me is None:
            return to_signin(request)
        flash = {"added": "Your passkey was added.", "removed": "The passkey was removed."}
        return profile_page(me, flash=flash.get(done, ""))

    @web.post("/profile/passkeys/options")
    def enrollment_options(
        request: Request, csrf: Annotated[str, Form(max_length=200)] = ""
    ) -> Response:
        me = signed_in(app, request)
        if me is None:
            return _json({"detail": "sign in first"}, 401)
        if not sessions.csrf_ok(me, csrf):
            return _json({"detail": CSRF_REFUSED}, 403)
        try:
            return _json(passkeys.enrollment_options(svc, me.user, me.signed_in_at))
        except SignoffError as exc:
            return _json({"detail": exc.detail}, exc.status)

    @web.post("/profile/passkeys", response_class=HTMLResponse)
    def enroll(
        request: Request,
        csrf: Annotated[str, Form(max_length=200)] = "",
        name: Annotated[str, Form(max_length=1000)] = "",
        credential: Annotated[str, Form(max_length=MAX_ANSWER)] = "",
    ) -> Response:
        me = signed_in(app, request)
        if me is None:
            return to_signin(request)
        if not sessions.csrf_ok(me, csrf):
            return page("message.html", "Not added", 403, me=me, app=app, lines=[CSRF_REFUSED])
        if not credential:
            return profile_page(
                me, 422, "Adding a passkey needs JavaScript (WebAuthn) in this browser.", "", name
            )
        try:
            passkeys.enroll(svc, me.user, name, credential, me.signed_in_at)
        except SignoffError as exc:
            return profile_page(me, exc.status, exc.detail, "", name[:MAX_NAME])
        return RedirectResponse("/profile?done=added", status_code=303)

    @web.post("/profile/passkeys/{passkey_id}/remove", response_class=HTMLResponse)
    def remove(
        request: Request, passkey_id: str, csrf: Annotated[str, Form(max_length=200)] = ""
    ) -> Response:
        me = signed_in(app, request)
        if me is None:
            return to_signin(request)
        if not sessions.csrf_ok(me, csrf):
            return page("message.html", "Not removed", 403, me=me, app=app, lines=[CSRF_REFUSED])
        try:
            passkeys.remove(svc, me.user, passkey_id[:100])
        except SignoffError as exc:
            return profile_page(me, exc.status, exc.detail)
        return RedirectResponse("/profile?done=removed", status_code=303)

    @web.post("/requests/{request_id}/passkey-options")
    def vote_options(
        request: Request,
        request_id: str,
        decision: Annotated[str, Form(max_length=10)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        """The options to confirm one vote with a passkey: a challenge bound to this
        person, the request, the decision and the action's digest."""
        me = signed_in(app, request)
        if me is None:
            return _json({"detail": "sign in first"}, 401)
        if not sessions.csrf_ok(me, csrf):
            return _json({"detail": CSRF_REFUSED}, 403)
        if decision not in ("approve", "deny") or len(request_id) > 100:
            return _json({"detail": "choose Approve or Deny"}, 422)
        try:
            return _json(passkeys.vote_options(svc, me.user, request_id, Decision(decision)))
        except SignoffError as exc:
            return _json({"detail": exc.detail}, exc.status)

    return web
