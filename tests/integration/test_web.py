"""The web app over HTTP, as a browser speaks it: sign in by link, the inbox, the
request page and its vote form, sessions, CSRF, and hostile text shown as text.
(The same flows in a real browser, with live updates, are in tests/e2e/test_browser.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import pytest

from signoff.bootstrap import App
from signoff.domain.actions import Action
from signoff.domain.requests import Status
from signoff.services import requests as use_cases
from signoff.services.ports import FixedClock

from ..conftest import LiveServer, reload

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
HOSTILE = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


@pytest.fixture
def site(staged_site: tuple[App, LiveServer, FixedClock]) -> tuple[App, LiveServer, FixedClock]:
    return staged_site


def ask(
    app: App, sql: str = "UPDATE plans SET tier = 'pro' WHERE id = 7", **context: object
) -> str:
    svc = app.services
    return use_cases.submit_request(
        svc,
        svc.directory.user("dave"),
        Action("sql.execute", "pg/staged", {"sql": sql}),
        "move customer 7",
        "OPS-7",
        dict(context),
    ).id


@contextmanager
def browser(app: App, person: str, next_path: str = "") -> Iterator[httpx.Client]:
    """A client signed in as ``person`` through a one-time link, cookie kept."""
    with httpx.Client(timeout=10, headers={"Accept": "text/html"}) as web:
        landed = web.get(app.signin_link(person, next_path), follow_redirects=True)
        assert landed.status_code == 200, landed.text[:300]
        yield web


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def test_sign_in_by_link_once_then_the_inbox_and_a_vote(site) -> None:
    app, server, _ = site
    rid = ask(app)
    link = app.signin_link("bob", f"/requests/{rid}")
    with httpx.Client(timeout=10, headers={"Accept": "text/html"}) as web:
        landed = web.get(link, follow_redirects=True)
        assert landed.status_code == 200 and str(landed.url).endswith(f"/requests/{rid}")
        assert "httponly" in landed.history[0].headers["set-cookie"].lower()
        assert "samesite=lax" in landed.history[0].headers["set-cookie"].lower()
        inbox = web.get(f"{server.url}/")
        assert inbox.status_code == 200 and f"/requests/{rid}" in inbox.text
        assert "stage 1 of 2: dba" in inbox.text
        page = web.get(f"{server.url}/requests/{rid}")
        voted = web.post(
            f"{server.url}/requests/{rid}/vote",
            data={"decision": "approve", "comment": "ok", "csrf": csrf_of(page.text)},
            follow_redirects=True,
        )
        assert voted.status_code == 200 and "Your approval was recorded." in voted.text
        assert "You already approved it." in voted.text
        assert [v.voter for v in reload(app.services, rid).votes] == ["bob"]
    with httpx.Client(timeout=10) as other:  # the same link again: used
        again = other.get(link)
        assert again.status_code == 403 and "already been used" in again.text


def test_an_expired_or_forged_sign_in_link_is_refused(site) -> None:
    app, server, clock = site
    link = app.signin_link("bob")
    clock.advance(minutes=16)
    with httpx.Client(timeout=10) as web:
        expired = web.get(link)
        assert expired.status_code == 403 and "expired" in expired.text
        assert "signoff signin-link --user YOUR_NAME" in expired.text
        forged = web.get(link[:-4] + "AAAA")
        assert forged.status_code == 403
        assert web.get(f"{server.url}/", follow_redirects=False).status_code == 303


def test_next_never_leaves_the_site(site) -> None:
    app, _, _ = site
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"):
        with httpx.Client(timeout=10) as web:
            landed = web.get(app.signin_link("bob", target), follow_redirects=False)
            assert landed.status_code == 303
            assert landed.headers["location"] == "/", target


def test_the_requester_gets_no_buttons_and_a_forged_vote_is_refused(site) -> None:
    app, server, _ = site
    rid = ask(app)
    with browser(app, "dave") as web:
        page = web.get(f"{server.url}/requests/{rid}")
        assert page.status_code == 200
        assert 'value="approve"' not in page.text
        assert "You asked for this: someone else decides." in page.text
        forged = web.post(
            f"{server.url}/requests/{rid}/vote",
            data={"decision": "approve", "csrf": csrf_of(page.text)},
        )
        assert forged.status_code == 403 and "your own request" in forged.text
    assert reload(app.services, rid).votes == []


def test_a_post_without_the_csrf_token_changes_nothing(site) -> None:
    app, server, _ = site
    rid = ask(app)
    with browser(app, "bob") as web:
        for token in ("", "forged"):
            sent = web.post(
                f"{server.url}/requests/{rid}/vote", data={"decision": "approve", "csrf": token}
            )
            assert sent.status_code == 403 and "security token" in sent.text
        out = web.post(f"{server.url}/signout", data={})
        assert out.status_code == 403  # sign-out is a form too
    assert reload(app.services, rid).votes == []


def test_a_deny_needs_a_reason_and_a_later_stage_waits(site) -> None:
    app, server, _ = site
    rid = ask(app)
    with browser(app, "erin") as web:  # security: stage 2
        page = web.get(f"{server.url}/requests/{rid}")
        assert "You approve in stage 2 (security), which is not active yet." in page.text
    with browser(app, "bob") as web:
        page = web.get(f"{server.url}/requests/{rid}")
        bare = web.post(
            f"{server.url}/requests/{rid}/vote",
            data={"decision": "deny", "comment": " ", "csrf": csrf_of(page.text)},
        )
        assert bare.status_code == 422 and "say why you deny it" in bare.text
    assert reload(app.services, rid).status is Status.PENDING


def test_sign_out_ends_the_session(site) -> None:
    app, server, _ = site
    with browser(app, "bob") as web:
        page = web.get(f"{server.url}/")
        out = web.post(f"{server.url}/signout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 200 and "You are signed out." in out.text
        after = web.get(f"{server.url}/", follow_redirects=False)
        assert after.status_code == 303 and after.headers["location"].startswith("/signin")


def test_an_idle_session_ends(site) -> None:
    app, server, clock = site
    with browser(app, "bob") as web:
        clock.advance(hours=9)
        after = web.get(f"{server.url}/", follow_redirects=False)
        assert after.status_code == 303


def test_hostile_text_is_shown_as_text(site) -> None:
    app, server, _ = site
    rid = ask(
        app,
        sql=f"SELECT '{HOSTILE}'",
        risk="high",
        links=["javascript:alert(3)", "https://ok.example/x"],
        labels={"x": HOSTILE},
        diff=f"+{HOSTILE}\n",
    )
    with browser(app, "bob") as web:
        for path in ("/", f"/requests/{rid}"):
            page = web.get(f"{server.url}{path}")
            assert page.status_code == 200
            assert "<script>alert" not in page.text and "<img src=x" not in page.text
            assert 'href="javascript:' not in page.text
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page.text


def test_errors_in_a_browser_are_pages(site) -> None:
    app, server, _ = site
    with browser(app, "bob") as web:
        missing = web.get(f"{server.url}/no/such/page")
        assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
        unknown = web.get(f"{server.url}/requests/00000000-no-such")
        assert unknown.status_code == 404 and "<h1>" in unknown.text
    api = httpx.get(f"{server.url}/v1/nothing", headers={"Accept": "application/json"})
    assert api.headers["content-type"].startswith("application/problem+json")


def test_what_i_decided_and_what_i_watch(site) -> None:
    app, server, _ = site
    rid = ask(app)
    other = ask(app, sql="UPDATE plans SET tier = 'pro' WHERE id = 8")
    with browser(app, "bob") as web:
        page = web.get(f"{server.url}/requests/{rid}")
        web.post(
            f"{server.url}/requests/{rid}/vote",
            data={"decision": "deny", "comment": "not now", "csrf": csrf_of(page.text)},
        )
        decided = web.get(f"{server.url}/decided")
        assert decided.status_code == 200
        assert f"/requests/{rid}" in decided.text and f"/requests/{other}" not in decided.text
        assert "you denied it" in decided.text and "denied by bob: not now" in decided.text
        watching = web.get(f"{server.url}/watching")
        assert f"/requests/{rid}" in watching.text and f"/requests/{other}" in watching.text
    with browser(app, "frank") as web:  # asked nothing, sees nothing
        assert f"/requests/{rid}" not in web.get(f"{server.url}/watching").text
        assert "You have not voted on anything yet." in web.get(f"{server.url}/decided").text
