"""Pages for people: templates, the headers every page carries, who is signed in, and
the navigation other page modules add to.

Pages are Jinja2 templates (``templates/``, autoescaped) with one stylesheet and one
small script (``assets/``; the script only makes pages update live, every form works
without it). A request is shown with the rows every channel uses
(``adapters/channels/messages.context_rows``), so a page and a mail never disagree.

People sign in with a one-time link (``signoff signin-link``, or the one the server
prints at first start), or with an OpenID provider when one is configured
(``/signin/oidc``: code flow with PKCE, state and nonce; ``adapters/oidc.py``), and get a
server-side session (``services/sessions.py``): an
HttpOnly, SameSite=Lax cookie (Secure over HTTPS); every form that changes something
carries the session's CSRF token. Messages' "Details" links are signed for one person
and show that request read-only without a session.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from signoff.adapters.channels.messages import context_rows
from signoff.bootstrap import App
from signoff.domain.errors import SignoffError, Unauthenticated
from signoff.domain.requests import Request as SignoffRequest
from signoff.services import sessions
from signoff.services.messages import summarize
from signoff.services.sessions import SignedIn

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
COOKIE = "signoff_session"
# Binds a single sign-in under way to the browser that started it (login CSRF).
OIDC_COOKIE = "signoff_oidc"
OIDC_PATH = "/signin/oidc"

# No inline script or style, no frames, no third party, no referrer (links carry tokens).
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    admin: bool = False
    count_key: str | None = None


# The navigation, in order; each page module adds its own entries when it is mounted.
NAV: list[NavItem] = []
# Counts shown next to navigation entries ("Inbox 3"), by key, for a signed-in person.
COUNTS: dict[str, Callable[[App, SignedIn], int]] = {}


def add_nav(item: NavItem) -> None:
    if all(i.path != item.path for i in NAV):
        NAV.append(item)


def page(
    template: str,
    title: str,
    status: int = 200,
    *,
    me: SignedIn | None = None,
    app: App | None = None,
    here: str = "",
    live: str | None = None,
    known: Mapping[str, int] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page; ``known``: navigation counts the caller has already (not asked again)."""
    counts: dict[str, int] = dict(known or {})
    if me is not None and app is not None:
        for key, count in COUNTS.items():
            if key not in counts:
                counts[key] = count(app, me)
    html = templates.get_template(template).render(
        title=title, me=me, nav=NAV, here=here, counts=counts, live=live, **context
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def refused(title: str, exc: SignoffError, me: SignedIn | None = None) -> HTMLResponse:
    return page("message.html", title, exc.status, me=me, lines=[exc.detail])


def request_context(app: App, r: SignoffRequest) -> dict[str, Any]:
    """What the request templates show: the summary and its rows."""
    summary = summarize(r, r.action.target in app.services.targets)
    return {"r": summary, "rows": context_rows(summary, r.status.value)}


def signed_in(app: App, request: Request) -> SignedIn | None:
    """Who the session cookie stands for, or None."""
    value = request.cookies.get(COOKIE, "")
    if not value:
        return None
    try:
        return sessions.session_for(app.services, value)
    except Unauthenticated:
        return None


def safe_next(value: str | None) -> str:
    """A path on this site to go to after signing in; anything else is "/" (no open
    redirect: no scheme, no host, no ``//`` or backslash tricks)."""
    if (
        not value
        or len(value) > 2000
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or any(c in value for c in "\\\r\n\t\x00")
    ):
        return "/"
    return value


def to_signin(request: Request) -> RedirectResponse:
    """Off to the sign-in page, to come back here after."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/signin?next={quote(safe_next(here), safe='/')}", status_code=303)


def router(app: App) -> APIRouter:
    web = APIRouter(tags=["pages"], include_in_schema=False)
    svc = app.services
    secure = app.settings.public_url.startswith("https://")

    def session_cookie(response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE,
            value,
            max_age=int(svc.session_max.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=secure,
            path="/",
        )

    oidc = app.oidc
    callback = app.settings.public_url.rstrip("/") + OIDC_PATH + "/callback"

    def sso_refused(exc: SignoffError) -> HTMLResponse:
        response = page(
            "signin.html",
            "Single sign-on did not sign you in",
            exc.status,
            lines=[exc.detail],
            ttl=app.settings.signin_link_ttl,
            next="",
            sso=oidc.display_name if oidc is not None else "",
        )
        response.delete_cookie(OIDC_COOKIE, path=OIDC_PATH, secure=secure, httponly=True)
        return response

    @web.get(OIDC_PATH, response_class=HTMLResponse)
    def sign_in_oidc(next: str = "") -> Response:
        """Off to the OpenID provider: a new state, nonce and PKCE verifier, kept on the
        server and bound to this browser by a short-lived cookie."""
        if oidc is None:
            return page("message.html", "Not found", 404, lines=["Single sign-on is not set up."])
        try:
            started = oidc.start(callback)
        except SignoffError as exc:
            return sso_refused(exc)
        browser = secrets.token_urlsafe(32)
        sessions.begin_oidc_login(
            svc, started.state, browser, started.nonce, started.verifier, safe_next(next)
        )
        response = RedirectResponse(started.url, status_code=303)
        response.set_cookie(
            OIDC_COOKIE,
            browser,
            max_age=int(sessions.OIDC_LOGIN_TTL.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=secure,
            path=OIDC_PATH,
        )
        return response

    @web.get(OIDC_PATH + "/callback", response_class=HTMLResponse)
    def sign_in_oidc_callback(
        request: Request, state: str = "", code: str = "", error: str = "", iss: str = ""
    ) -> Response:
        """Back from the provider: the state must be one this browser started and not
        used yet; then the code is exchanged and the ID token checked."""
        if oidc is None:
            return page("message.html", "Not found", 404, lines=["Single sign-on is not set up."])
        try:
            login = sessions.take_oidc_login(svc, state, request.cookies.get(OIDC_COOKIE, ""))
            if iss and iss != oidc.issuer:  # RFC 9207: an answer from another provider
                raise Unauthenticated(f"this answer comes from {iss[:200]!r}, not {oidc.issuer}")
            if error or not code or len(code) > 4000:
                raise Unauthenticated(
                    f"the provider did not sign you in ({error[:100] or 'no code'})"
                )
            claims = oidc.finish(callback, code, login.verifier, login.nonce)
            value, _ = sessions.sign_in_by_oidc(
                svc,
                claims.issuer,
                claims.subject,
                claims.name,
                claims.email,
                oidc.mapped(claims.groups),
            )
        except SignoffError as exc:
            return sso_refused(exc)
        response = RedirectResponse(safe_next(login.next_path), status_code=303)
        session_cookie(response, value)
        response.delete_cookie(OIDC_COOKIE, path=OIDC_PATH, secure=secure, httponly=True)
        return response

    @web.get("/signin/{token}", response_class=HTMLResponse)
    def sign_in(token: str, next: str = "") -> Response:
        """Use a one-time sign-in link: a session, then the page asked for."""
        try:
            if len(token) > 4000:
                raise Unauthenticated("this link is not valid")
            claims = app.links.verify_signin(token)
            value, _ = sessions.sign_in_by_link(svc, claims)
        except SignoffError as exc:
            return page(
                "signin.html",
                "This sign-in link cannot be used",
                exc.status,
                lines=[exc.detail, "Ask for a new link:"],
                ttl=app.settings.signin_link_ttl,
                next="",
                sso=oidc.display_name if oidc is not None else "",
            )
        response = RedirectResponse(safe_next(next), status_code=303)
        session_cookie(response, value)
        return response

    @web.get("/signin", response_class=HTMLResponse)
    def sign_in_page(next: str = "") -> HTMLResponse:
        return page(
            "signin.html",
            "Sign in",
            401,
            lines=[
                f"Sign in with {oidc.display_name}, or with a one-time link."
                if oidc is not None
                else "Signoff signs people in with a one-time link."
            ],
            ttl=app.settings.signin_link_ttl,
            next=safe_next(next) if next else "",
            sso=oidc.display_name if oidc is not None else "",
        )

    @web.post("/signout", response_class=HTMLResponse)
    async def sign_out(request: Request) -> Response:
        me = signed_in(app, request)
        form = await request.form()
        if me is not None:
            if not sessions.csrf_ok(me, str(form.get("csrf", ""))):
                return page("message.html", "Not signed out", 403, me=me, lines=[CSRF_REFUSED])
            sessions.end_session(svc, request.cookies.get(COOKIE, ""))
        response = page("message.html", "Signed out", lines=["You are signed out."])
        response.delete_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
        return response

    @web.get("/assets/code.css")
    def code_css() -> Response:
        from signoff.entrypoints.web.render import code_css

        return Response(
            code_css(), media_type="text/css", headers={"Cache-Control": "max-age=3600"}
        )

    return web


CSRF_REFUSED = (
    "This form was not sent from a Signoff page (its security token is missing or old). "
    "Nothing was changed: go back, reload the page and try again."
)


def mount_assets(api: Any) -> None:
    api.mount("/assets", StaticFiles(directory=HERE / "assets"), name="assets")
