"""Passkeys in a real headless Chromium with its virtual authenticator (DevTools'
``WebAuthn.addVirtualAuthenticator``, through Playwright's CDP session): enroll on the
profile, approve a passkey stage from the request page, and see an assertion made for
another request, another decision or another person refused.

WebAuthn needs a secure context and an rp id that is the page's host: the server's public
URL here is ``http://localhost:PORT`` (localhost is a secure context over http), so the
rp id is ``localhost``; the tests' ``*.signoff.test`` names are plain http, not secure.
Screenshots go to /work/scratch/passkeys-shots when that folder's parent exists, else
to a temporary folder this module prints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from signoff.bootstrap import App, build
from signoff.domain.actions import Action
from signoff.services import requests as use_cases

from ..conftest import FIXTURES, LiveServer, bound_socket, make_settings

SHOTS = Path("/work/scratch/passkeys-shots")


@pytest.fixture(scope="module")
def site(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("passkeys")
    sock = bound_socket()
    url = f"http://localhost:{sock.getsockname()[1]}"
    settings = make_settings(
        module_database_url, data_dir, public_url=url, policies_dir=FIXTURES / "passkeys"
    )
    app = build(settings)
    server = LiveServer(app, sock).start()
    shots = SHOTS if SHOTS.parent.is_dir() else tmp_path_factory.mktemp("screenshots")
    shots.mkdir(exist_ok=True)
    print(f"\npasskey screenshots: {shots}")
    try:
        yield {"app": app, "url": url, "shots": shots}
    finally:
        server.stop()
        app.close()


def ask(app: App, target: str = "prod/api", version: str = "1.2.3") -> str:
    svc = app.services
    return use_cases.submit_request(
        svc,
        svc.directory.user("dave"),
        Action("deploy", target, {"version": version}),
        "ship the release",
        None,
        {},
    ).id


def with_authenticator(page: Page) -> tuple[Any, str]:
    """A virtual platform authenticator (user verification on) for this page."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


def sign_in(page: Page, app: App, person: str, next_path: str) -> None:
    page.goto(app.signin_link(person, next_path))
    expect(page.locator(".who")).to_have_text(person)


def enroll(page: Page, app: App, person: str, name: str) -> None:
    sign_in(page, app, person, "/profile")
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator(".flash")).to_have_text("Your passkey was added.")


# Makes an assertion in the page for (request, decision) as the page's script would, and
# returns it as the JSON the vote form carries: to replay it elsewhere.
ASSERT = """async ([rid, decision]) => {
  const body = new FormData();
  body.append("csrf", document.querySelector("input[name=csrf]").value);
  body.append("decision", decision);
  const r = await fetch(`/requests/${rid}/passkey-options`, {method: "POST", body});
  const options = await r.json();
  if (!r.ok) throw new Error(options.detail);
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
  const cred = await navigator.credentials.get({publicKey});
  return JSON.stringify(cred.toJSON());
}"""


def post_vote(
    page: Page, url: str, rid: str, decision: str, assertion: str | None
) -> tuple[int, str]:
    """The vote form's POST, sent by this page's browser context (its session)."""
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    form = {"csrf": csrf or "", "decision": decision, "comment": "replayed"}
    if assertion is not None:
        form["passkey"] = assertion
    answer = page.request.post(f"{url}/requests/{rid}/vote", form=form, max_redirects=0)
    return answer.status, answer.text()


def vote_events(app: App, rid: str) -> list[dict[str, Any]]:
    with app.services.uow(write=False) as uow:
        return [
            {"actor": e.actor, **e.payload_data()}
            for e in uow.audit.events(request_id=rid)
            if e.type == "vote.cast"
        ]


def test_enroll_on_the_profile_then_approve_a_passkey_stage(page: Page, site) -> None:
    app, url, shots = site["app"], site["url"], site["shots"]
    cdp, authenticator = with_authenticator(page)
    page.set_default_timeout(15_000)
    enroll(page, app, "bob", "laptop")
    row = page.locator("table.passkeys tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").first).to_have_text("laptop")
    expect(row).to_contain_text("never")
    page.screenshot(path=str(shots / "profile-with-passkey.png"), full_page=True)

    rid = ask(app)
    page.goto(f"{url}/requests/{rid}")
    expect(page.locator(".passkey-note")).to_contain_text("This stage needs a passkey.")
    expect(page.locator(".passkey-note")).not_to_contain_text("You have none yet")
    # the terminal commands a passkey stage cannot take are not offered
    expect(page.locator("#terminal")).not_to_contain_text("signoff approve")
    page.screenshot(path=str(shots / "request-passkey-stage.png"), full_page=True)

    page.get_by_label("Comment").fill("checked the release notes")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".flash")).to_have_text("Your approval was recorded.")
    [vote] = vote_events(app, rid)
    [key] = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert vote["actor"] == "bob" and vote["decision"] == "approve"
    assert vote["step_up"]["method"] == "passkey"
    assert (
        key["credentialId"]
        .rstrip("=")
        .replace("+", "-")
        .replace("/", "_")
        .startswith(vote["step_up"]["credential"])
    )
    assert key["signCount"] >= 1
    page.goto(f"{url}/profile")
    expect(page.locator("table.passkeys tbody tr")).not_to_contain_text("never")


def test_an_assertion_for_another_request_decision_or_person_is_refused(
    page: Page, browser: Browser, site
) -> None:
    app, url = site["app"], site["url"]
    with_authenticator(page)
    page.set_default_timeout(15_000)
    enroll(page, app, "carol", "security key")
    one, other = ask(app, version="2.0.0"), ask(app, version="2.0.1")
    page.goto(f"{url}/requests/{one}")

    # no assertion: the form's POST is refused and says where to finish
    status, text = post_vote(page, url, one, "approve", None)
    assert status == 403 and "this stage needs a passkey: finish on the web page" in text
    # made for the other request, or for a deny: refused, and nothing counted
    for_other = page.evaluate(ASSERT, [other, "approve"])
    status, text = post_vote(page, url, one, "approve", for_other)
    assert status == 403 and "made for another request or decision" in text
    for_deny = page.evaluate(ASSERT, [one, "deny"])
    status, text = post_vote(page, url, one, "approve", for_deny)
    assert status == 403 and "made for another request or decision" in text
    assert vote_events(app, one) == []

    # the right one counts once; replayed, it is spent
    right = page.evaluate(ASSERT, [one, "approve"])
    status, _ = post_vote(page, url, one, "approve", right)
    assert status == 303
    # on a stage of two passkey approvals, bob cannot use an assertion carol made
    db = ask(app, target="prod/db", version="3.0.0")
    stolen = page.evaluate(ASSERT, [db, "approve"])
    bob_context = browser.new_context()
    try:
        bob = bob_context.new_page()
        sign_in(bob, app, "bob", f"/requests/{db}")
        status, text = post_vote(bob, url, db, "approve", stolen)
        assert status == 403 and "already used or not asked for" in text
    finally:
        bob_context.close()
    status, _ = post_vote(page, url, db, "approve", stolen)  # carol's own, unspent: counts
    assert status == 303
    status, text = post_vote(page, url, db, "approve", stolen)
    assert status == 409  # carol voted; and the assertion is spent
    assert [v["actor"] for v in vote_events(app, db)] == ["carol"]
    assert json.loads(stolen)["type"] == "public-key"

    # removed on the profile, the passkey approves nothing any more
    page.goto(f"{url}/profile")
    page.get_by_role("button", name="Remove security key").click()
    expect(page.locator(".flash")).to_have_text("The passkey was removed.")
    expect(page.locator(".empty")).to_have_text("You have no passkey yet.")
    last = ask(app, version="2.0.2")
    page.goto(f"{url}/requests/{last}")
    expect(page.locator(".passkey-note")).to_contain_text("You have none yet")
    with pytest.raises(Exception, match="you have none"):
        page.evaluate(ASSERT, [last, "approve"])
    with app.services.uow(write=False) as uow:
        audited = [e.type for e in uow.audit.events() if e.actor == "carol"]
    assert audited.count("passkey.added") == 1 and audited.count("passkey.removed") == 1
