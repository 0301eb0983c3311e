"""Pages for people: the templates and the headers every page carries, and the page
behind a message's "Details" link.

Pages are Jinja2 templates (``templates/``, autoescaped) with one stylesheet
(``assets/``) and no script. A request is shown with the rows every channel uses
(``adapters/channels/messages.context_rows``), so a page and a mail never disagree.

Until people sign in to the web app, "Details" links are signed for the person the
message was for (``VoteLinkSigner.issue_view``): read-only, reusable until they expire,
and refused as votes. The page shows the request only if that person may see it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from signoff import commands
from signoff.adapters.channels.messages import context_rows
from signoff.bootstrap import App
from signoff.domain.errors import SignoffError
from signoff.domain.requests import Request, Status
from signoff.services import views
from signoff.services.messages import summarize

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# No script, no frames, no third party, no referrer (links carry signed tokens).
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def page(template: str, title: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(title=title, **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def refused(title: str, exc: SignoffError) -> HTMLResponse:
    return page("message.html", title, exc.status, lines=[exc.detail])


def request_context(app: App, r: Request) -> dict[str, Any]:
    """What the request templates show: the summary and its rows."""
    summary = summarize(r, r.action.target in app.services.targets)
    return {"r": summary, "rows": context_rows(summary, r.status.value)}


def commands_for(person: str, r: Request, executes: bool) -> list[str]:
    """The commands this person can run about this request now."""
    found = []
    if r.status is Status.PENDING and person in r.awaiting():
        found += [commands.approve(r.id), commands.deny(r.id)]
    if person == r.requester:
        if r.status is Status.PENDING:
            found.append(commands.cancel(r.id))
        elif r.status is Status.APPROVED and r.grant is not None:
            if executes:
                found.append(commands.execute(r.id))
            else:
                a = r.action
                found.append(
                    commands.redeem(r.id, a.type, a.target, a.params) or commands.grant_token(r.id)
                )
    return found


def router(app: App) -> APIRouter:
    web = APIRouter(tags=["pages"], include_in_schema=False)
    svc = app.services

    @web.get("/requests/{request_id}", response_class=HTMLResponse)
    def request_page(request_id: str, t: str = "") -> HTMLResponse:
        """One request, for the person its link was signed for."""
        if len(request_id) > 100 or len(t) > 4000:
            return page("message.html", "No such page", 404, lines=["Nothing is here."])
        if not t:
            return page(
                "message.html",
                "Open this page from your message",
                401,
                lines=[
                    "This page shows a request to the person a message's Details link was "
                    "made for. Open it from that link, or read the request from a terminal:"
                ],
                commands=[commands.show(request_id)],
            )
        try:
            claims = app.links.verify_view(t)
            if claims["rid"] != request_id:
                return page(
                    "message.html",
                    "This link is for another request",
                    403,
                    lines=["Open the link from your message as it was sent."],
                )
            person = svc.directory.user(str(claims["sub"]))
            r = views.request_for(svc, person, request_id)
        except SignoffError as exc:
            return refused("This link cannot be used", exc)
        context = request_context(app, r)
        executes = r.action.target in svc.targets
        return page(
            "request.html",
            f"{r.action.type} on {r.action.target}",
            lead=f"Request {r.id}, shown to {person.name}.",
            commands=commands_for(person.name, r, executes),
            **context,
        )

    return web


def mount_assets(api: Any) -> None:
    api.mount("/assets", StaticFiles(directory=HERE / "assets"), name="assets")
