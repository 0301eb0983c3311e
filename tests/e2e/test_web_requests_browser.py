"""The requester's pages in a real browser (Debian's chromium, driven by Playwright):
the dry run follows what is typed without sending the form, My requests shows a new
state without a reload, and no page breaks its Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from signoff.bootstrap import App, build
from signoff.domain.actions import Action
from signoff.domain.requests import Decision
from signoff.services import requests as use_cases

from ..conftest import TEST_DOMAIN, LiveServer, bound_socket, make_settings


@pytest.fixture
def site(tmp_path: Path) -> Iterator[App]:
    sock = bound_socket()
    url = f"http://app.{TEST_DOMAIN}:{sock.getsockname()[1]}"
    app = build(make_settings(f"sqlite:///{tmp_path}/signoff.db", tmp_path, public_url=url))
    server = LiveServer(app, sock).start()
    try:
        yield app
    finally:
        server.stop()
        app.close()


def test_the_dry_run_follows_typing_and_my_requests_follow_changes(
    browser: Browser, site: App
) -> None:
    app = site
    svc = app.services
    broken: list[str] = []
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.on("console", lambda m: broken.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: broken.append(str(e)))
    dry = page.locator("#dry-run")
    try:
        page.goto(app.signin_link("dave", "/new"))
        expect(dry).to_contain_text("Fill in the type and the target")
        page.fill("#type", "sql.execute")
        page.fill("#target", "pg/prod")
        page.fill("#params", "sql=SELECT 1")
        expect(dry).to_contain_text("Allowed by policy read-only-sql", timeout=5000)
        page.fill("#params", "sql=DELETE FROM sessions\n WHERE id = 3")
        expect(dry).to_contain_text("2 approvals from dba (bob, carol)", timeout=5000)
        expect(dry).to_contain_text("none given yet")
        page.fill("#ticket", "OPS-5")
        page.fill("#reason", "a stuck session")
        expect(dry).to_contain_text("OPS-5 matches", timeout=5000)
        expect(dry).not_to_have_class("dry-problem")
        # the hint under Parameters follows the type
        expect(page.locator("[data-params=argv]")).to_be_hidden()
        page.fill("#type", "command.run")
        expect(page.locator("[data-params=argv]")).to_be_visible()
        expect(page.locator("[data-params=pairs]")).to_be_hidden()
        page.fill("#type", "sql.execute")
        assert page.url.endswith("/new")  # all of this without sending the form
        with svc.uow(write=False) as uow:
            listed = uow.requests.list(
                status=None, requester=None, awaiting=None, cursor=None, limit=10
            )
        assert listed.items == []
        page.click("button[value=ask]")
        expect(page.locator("main")).to_contain_text("Your request was sent", timeout=5000)
        rid = page.url.split("?")[0].rsplit("/", 1)[1]

        page.goto(app.settings.public_url + "/mine")
        items = page.locator("#items")
        expect(items).to_contain_text("2 more approvals from bob or carol")
        page.wait_for_timeout(300)  # the page's event stream is open
        use_cases.cast_vote(svc, svc.directory.user("bob"), rid, Decision.APPROVE, "")
        expect(items).to_contain_text("1 more approval from carol", timeout=5000)
        other = use_cases.submit_request(
            svc, svc.directory.user("dave"), Action("sql.drop", "pg/prod", {}), "", None, {}
        )
        expect(page.locator(f"#items a[href='/requests/{other.id}']")).to_be_visible(timeout=5000)
        expect(items).to_contain_text("denied: policy 'forbidden-drop' denies it")
    finally:
        context.close()
    assert broken == []
