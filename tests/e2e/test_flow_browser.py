"""The flow dashboard in headless Chromium over a known history: it renders (charts as
SVG, under the strict CSP), and its numbers are the JSON report's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from signoff.bootstrap import build
from signoff.services.ports import FixedClock
from tests.integration.test_analytics import T0, make_history

from ..conftest import TEST_DOMAIN, LiveServer, bound_socket, make_settings


@pytest.fixture(scope="module")
def site(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    sock = bound_socket()
    url = f"http://app.{TEST_DOMAIN}:{sock.getsockname()[1]}"
    clock = FixedClock(T0)
    app = build(
        make_settings(module_database_url, tmp_path_factory.mktemp("flow"), public_url=url),
        clock=clock,
    )
    make_history(app, clock)
    server = LiveServer(app, sock).start()
    shots = tmp_path_factory.mktemp("screenshots")
    print(f"\nflow dashboard screenshots: {shots}")
    try:
        yield {"app": app, "url": url, "server": server, "shots": shots}
    finally:
        server.stop()
        app.close()


def test_the_dashboard_shows_the_reports_numbers(browser: Browser, site) -> None:
    app, server = site["app"], site["server"]
    report = server.client("alice").get("/v1/analytics/report", params={"since": "24h"}).json()
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(app.signin_link("alice", "/flow?since=24h"))
    expect(page.locator("h1")).to_have_text("Approval flow")
    expect(page.locator("[data-figure=requests]")).to_have_text(str(report["requests"]))
    for p in report["policies"]:
        row = page.locator(f"#policies tr[data-policy='{p['name']}'] td")
        figures = ("requests", "allowed", "denied_by_policy", "reviewed", "approved", "denied")
        assert row.all_inner_texts()[: len(figures)] == [str(p[k]) for k in figures]
    for a in report["approvers"]:
        row = page.locator(f"#approvers tr[data-approver='{a['name']}'] td")
        assert row.all_inner_texts()[:2] == [str(a["asks"]), str(a["votes"])]
    shown = page.locator(".finding").evaluate_all(
        "els => els.map(e => [e.dataset.kind, e.dataset.subject])"
    )
    assert shown == [[f["kind"], f["subject"]] for f in report["findings"]]
    # one bar segment per non-zero outcome of each policy
    outcomes = ("allowed", "approved", "denied", "denied_by_policy", "timed_out")
    outcomes += ("cancelled", "pending")
    segments = sum(1 for p in report["policies"] for k in outcomes if p[k])
    assert page.locator("svg.bars").first.locator("rect").count() == segments
    assert errors == []  # nothing refused by the CSP, no script error
    page.screenshot(path=str(site["shots"] / "flow.png"), full_page=True)


def test_an_approver_sees_their_own_figures_and_bad_windows_are_said(browser: Browser, site):
    app = site["app"]
    page = browser.new_context(viewport={"width": 420, "height": 900}).new_page()
    page.goto(app.signin_link("carol", "/flow?since=24h"))
    expect(page.locator("h1")).to_have_text("Your approvals")
    assert page.locator("#approvers tbody tr").count() == 1
    assert page.locator("#policies").count() == 0
    page.screenshot(path=str(site["shots"] / "flow-approver-phone.png"), full_page=True)
    response = page.goto(f"{site['url']}/flow?since=lately")
    assert response is not None and response.status == 422
    expect(page.locator("[role=alert]")).to_contain_text("since must be a duration")
    assert httpx.get(f"{site['server'].url}/flow", follow_redirects=False).status_code == 303


def test_an_admin_replays_a_candidate_in_the_browser(browser: Browser, site, tmp_path) -> None:
    from tests.integration.test_policy_replay import ALLOW_CHANGES, CURRENT, ESCALATING

    app = site["app"]
    wide = tmp_path / "10-main.yaml"
    wide.write_text(CURRENT.replace(ESCALATING, ALLOW_CHANGES))
    broken = tmp_path / "broken.yaml"
    broken.write_text("policies:\n  - name: x\n    outcome: maybe\n")
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(app.signin_link("alice", "/flow"))
    page.get_by_role("link", name="Replay a policy change").click()
    page.locator("input[type=file]").set_input_files(str(wide))
    page.select_option("select[name=since]", "7d")
    page.get_by_role("button", name="Replay").click()
    expect(page.locator("[data-figure=changed]")).to_have_text("25")
    expect(page.locator("[data-figure=widening]")).to_have_text("25")
    expect(page.locator("[data-figure=spared]")).to_have_text("50")
    expect(page.locator("#changes")).to_contain_text("review -> allow")
    page.screenshot(path=str(site["shots"] / "flow-replay.png"), full_page=True)
    page.locator("input[type=file]").set_input_files(str(broken))
    page.get_by_role("button", name="Replay").click()
    expect(page.locator("[role=alert]")).to_contain_text("broken.yaml:3:")
    # someone who is not an admin is refused
    bob = browser.new_context().new_page()
    bob.goto(app.signin_link("bob", "/flow/replay"))
    expect(bob.locator("h1")).to_have_text("For admins only")


def test_on_a_phone_the_charts_stay_readable_and_scroll_sideways(browser: Browser, site):
    page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    page.goto(site["app"].signin_link("alice", "/flow?since=24h"))
    chart = page.locator("figure.chart").first
    label = chart.locator("text.bar-label").first
    # the labels are drawn at 13 units in an 820-unit drawing: 9px or more on screen
    assert label.evaluate("e => e.getBoundingClientRect().height") >= 9
    # the chart scrolls inside itself; the page does not
    assert chart.evaluate("e => e.scrollWidth > e.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(site["shots"] / "flow-phone.png"), full_page=True)
