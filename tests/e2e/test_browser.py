"""The web app in a real headless Chromium: sign in by link, an inbox that shows a new
request without a reload, a vote on the request page, the requester's page turning
approved live, hostile text that stays text, and sign-out. Screenshots of the pages are
saved under a folder this module prints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from signoff.bootstrap import App, build
from signoff.domain.actions import Action
from signoff.domain.requests import Decision
from signoff.services import requests as use_cases

from ..conftest import FIXTURES, TEST_DOMAIN, LiveServer, bound_socket, make_settings

HOSTILE = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
DIFF = "".join(
    f"@@ -{i},2 +{i},2 @@\n-replicas: {i}\n+replicas: {i + 1}\n context {i}\n" for i in range(1, 6)
)


@pytest.fixture(scope="module")
def site(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("web")
    sock = bound_socket()
    url = f"http://app.{TEST_DOMAIN}:{sock.getsockname()[1]}"
    settings = make_settings(
        module_database_url,
        data_dir,
        public_url=url,
        policies_dir=FIXTURES / "staged",
        ticket_url="https://tickets.example/browse/{ticket}",
    )
    app = build(settings)
    server = LiveServer(app, sock).start()
    shots = tmp_path_factory.mktemp("screenshots")
    print(f"\nweb app screenshots: {shots}")
    try:
        yield {"app": app, "url": url, "shots": shots}
    finally:
        server.stop()
        app.close()


def ask(app: App, sql: str, reason: str = "move customer 7", **context: Any) -> str:
    svc = app.services
    return use_cases.submit_request(
        svc,
        svc.directory.user("dave"),
        Action("sql.execute", "pg/staged", {"sql": sql}),
        reason,
        "OPS-7",
        dict(context),
    ).id


def signed_in(browser: Browser, app: App, person: str, width: int = 1280) -> Page:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(app.signin_link(person))
    expect(page.locator(".who")).to_have_text(person)
    return page


def test_approve_in_the_browser_and_watch_it_live(browser: Browser, site) -> None:
    app, url, shots = site["app"], site["url"], site["shots"]
    bob = signed_in(browser, app, "bob")
    expect(bob.locator("h1")).to_have_text("Needs your review")

    # a request asked now appears in bob's open inbox without a reload
    rid = ask(app, "UPDATE plans SET tier = 'pro' WHERE id = 7", risk="high", diff=DIFF)
    card = bob.locator(f'a[href="/requests/{rid}"]')
    expect(card).to_be_visible(timeout=10_000)
    bob.screenshot(path=shots / "inbox.png", full_page=True)

    # the requester's page: no buttons, and why
    dave = signed_in(browser, app, "dave")
    dave.goto(f"{url}/requests/{rid}")
    expect(dave.locator(".why-not")).to_have_text("You asked for this: someone else decides.")
    expect(dave.locator("button.approve")).to_have_count(0)

    # bob opens it from the inbox and approves with a comment
    card.click()
    expect(bob.locator(".banner").first).to_be_hidden()  # a bounded write: no banner
    expect(bob.locator("h3", has_text="Change (diff)")).to_be_visible()
    bob.screenshot(path=shots / "request.png", full_page=True)
    bob.fill("#comment", "checked the runbook")
    bob.click("button.approve")
    expect(bob.locator(".flash")).to_have_text("Your approval was recorded.")
    expect(bob.locator(".why-not")).to_have_text("You already approved it.")

    # dave's open page follows: stage 2, then approved when erin approves elsewhere
    expect(dave.locator("#state")).to_contain_text("2 of 2: security", timeout=10_000)
    svc = app.services
    use_cases.cast_vote(svc, svc.directory.user("erin"), rid, Decision.APPROVE, "ok")
    status = dave.locator("#state tr", has_text="Status").locator("td")
    expect(status).to_have_text("approved", timeout=10_000)
    expect(dave.locator("#state")).to_contain_text("approved by erin")
    expect(dave.locator("#terminal")).to_contain_text(f"signoff grant token {rid}")
    dave.screenshot(path=shots / "request-approved.png", full_page=True)

    # the inbox at a phone's width
    phone = signed_in(browser, app, "carol", width=390)
    ask(app, "DELETE FROM sessions WHERE expires < now()", risk="critical")
    phone.reload()
    phone.screenshot(path=shots / "inbox-phone.png", full_page=True)


def test_hostile_text_stays_text_and_sign_out_ends_the_session(browser: Browser, site) -> None:
    app, url = site["app"], site["url"]
    rid = ask(
        app,
        f"SELECT '{HOSTILE}'",
        reason=HOSTILE,
        risk="high",
        links=["javascript:alert(3)", "https://ok.example/runbook"],
        labels={"x": HOSTILE},
        diff=f"+{HOSTILE}\n",
    )
    bob = signed_in(browser, app, "bob")
    dialogs: list[str] = []
    bob.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    shown = bob.goto(f"{url}/requests/{rid}")
    assert shown is not None
    assert "script-src 'self'" in shown.headers["content-security-policy"]
    expect(bob.locator("#state")).to_contain_text(HOSTILE)  # shown, as text
    expect(bob.locator('a[href^="javascript:"]')).to_have_count(0)
    expect(bob.locator('a[href="https://ok.example/runbook"]')).to_have_count(1)
    bob.goto(f"{url}/")
    bob.wait_for_load_state("networkidle")
    assert dialogs == []

    bob.click("button:has-text('Sign out')")
    expect(bob.locator("h1")).to_have_text("Signed out")
    bob.goto(f"{url}/")
    expect(bob.locator("h1")).to_have_text("Sign in")


def test_the_new_request_form_and_the_audit_page(browser: Browser, site) -> None:
    app, url, shots = site["app"], site["url"], site["shots"]
    dave = signed_in(browser, app, "dave")
    dave.goto(f"{url}/new")
    dave.fill("[name=type]", "sql.execute")
    dave.fill("[name=target]", "pg/staged")
    dave.fill("[name=params]", "sql=UPDATE plans SET tier = 'pro' WHERE id = 9")
    dave.fill("[name=reason]", "customer upgrade")
    # the dry run follows what is typed, before anything is sent
    expect(dave.locator("#dry-run")).to_contain_text("staged-sql", timeout=10_000)
    dave.screenshot(path=shots / "new-request.png", full_page=True)
    alice = signed_in(browser, app, "alice")
    alice.goto(f"{url}/admin/audit")
    expect(alice.locator("h1")).to_have_text("Audit log")
    alice.screenshot(path=shots / "audit.png", full_page=False)


def test_a_used_sign_in_link_is_refused(browser: Browser, site) -> None:
    app = site["app"]
    link = app.signin_link("bob")
    first = browser.new_page()
    first.goto(link)
    expect(first.locator(".who")).to_have_text("bob")
    second = browser.new_page()
    second.goto(link)
    expect(second.locator("h1")).to_have_text("This sign-in link cannot be used")
    expect(second.locator("main")).to_contain_text("already been used")
