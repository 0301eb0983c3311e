"""A stage with ``approve_with: passkey``: a vote without a fresh assertion is refused on
every path (the API, the web form, a Slack button and the deny form, a mail link, the
CLI), each saying where to finish, and nothing is counted; the messages say a passkey
is needed. The passkey ceremony itself is tested in Chromium
(tests/e2e/test_passkeys_browser.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from signoff.bootstrap import build
from signoff.domain.requests import Status
from tests.conftest import reload

from ..conftest import FIXTURES, LiveServer, bound_socket, make_settings
from .test_slack import SECRET, FakeSlack, click, interact

DEPLOY = {"type": "deploy", "target": "prod/api", "params": {"version": "1.2.3"}}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


@pytest.fixture
def site(database_url: str, tmp_path: Path, slack: FakeSlack) -> Iterator[LiveServer]:
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = build(
        make_settings(
            database_url,
            tmp_path,
            public_url=url,
            policies_dir=FIXTURES / "passkeys",
            channels="slack:#prod-approvals",
            slack_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=f"{slack.url}/api/",
        )
    )
    server = LiveServer(app, sock).start()
    try:
        yield server
    finally:
        server.stop()
        app.close()


@contextmanager
def browser_session(
    server: LiveServer, person: str, rid: str
) -> Iterator[tuple[httpx.Client, str]]:
    """A signed-in web session (cookie) on the request's page, and its CSRF token."""
    with httpx.Client(base_url=server.url, timeout=30, follow_redirects=True) as web:
        page = web.get(server.app.signin_link(person, f"/requests/{rid}"))
        assert page.status_code == 200
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        yield web, found.group(1)


def test_a_vote_without_a_passkey_is_refused_on_every_path(
    site: LiveServer, slack: FakeSlack
) -> None:
    app = site.app
    with site.client("dave") as dave:
        rid = dave.post("/v1/requests", json={"action": DEPLOY, "reason": "ship"}).json()["id"]
    needs = f"this stage needs a passkey: finish on the web page {site.url}/requests/{rid}"

    # the API: a problem, 403
    with site.client("bob") as bob:
        answer = bob.post(f"/v1/requests/{rid}/votes", json={"decision": "approve"})
    assert answer.status_code == 403
    problem = answer.json()
    assert problem["type"].endswith("/step-up-required") and problem["detail"] == needs
    assert problem["reason"] == "passkey_required"

    # the web form, without the passkey's answer (no script, or a stolen cookie)
    with browser_session(site, "bob", rid) as (web, csrf):
        assert "This stage needs a passkey." in web.get(f"/requests/{rid}").text
        page = web.post(
            f"/requests/{rid}/vote", data={"csrf": csrf, "decision": "approve", "comment": "ok"}
        )
        assert page.status_code == 403 and needs in page.text
        assert "Your vote was not recorded" in page.text
        # an answer that is not one: refused too
        page = web.post(
            f"/requests/{rid}/vote",
            data={"csrf": csrf, "decision": "approve", "passkey": '{"rawId": "AAAA"}'},
        )
        assert page.status_code == 403 and "cannot be read" in page.text

    # Slack: the button answers privately with where to finish; so does the deny form
    app.dispatch()
    [posted] = slack.named("chat.postMessage")
    assert "this stage needs a passkey" in json.dumps(posted["blocks"])
    assert click(site, slack, "U_BOB", "approve", rid).status_code == 200
    assert slack.ephemeral[-1]["text"] == f"Not recorded: {needs}"
    denied = interact(
        site,
        slack,
        {
            "type": "view_submission",
            "user": {"id": "U_BOB"},
            "view": {
                "private_metadata": json.dumps({"request_id": rid}),
                "state": {"values": {"reason": {"text": {"value": "no"}}}},
            },
        },
    )
    assert denied.json()["errors"]["reason"] == needs[:150]

    # a mail (or Teams) link: the page says to finish with the passkey; the link is not spent
    token = app.links.issue("carol", rid, "approve", app.services.clock.now() + timedelta(hours=1))
    with httpx.Client(base_url=site.url, timeout=30) as web:
        seen = web.get(f"/links/{token}")
        assert seen.status_code == 403 and "Finish with your passkey" in seen.text
        assert f'href="/requests/{rid}"' in seen.text and "<form" not in seen.text
        for _ in range(2):  # refused, and again: the link was not used up
            posted_vote = web.post(f"/links/{token}", data={"comment": "fine"})
            assert posted_vote.status_code == 403 and "T" + needs[1:] in posted_vote.text

    # the CLI: exit 1, one line
    env = {
        "PATH": "/usr/bin:/bin",
        "SIGNOFF_URL": site.url,
        "SIGNOFF_TOKEN": site.tokens["bob"],
        "HOME": str(Path.home()),
    }
    cli = subprocess.run(
        [sys.executable, "-m", "signoff", "approve", rid],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1
    [line] = cli.stderr.strip().splitlines()
    assert line.endswith(needs)

    r = reload(app.services, rid)
    assert r.status is Status.PENDING and r.votes == []


def test_the_passkey_options_are_only_for_who_may_vote_now(site: LiveServer) -> None:
    with site.client("dave") as dave:
        rid = dave.post("/v1/requests", json={"action": DEPLOY, "reason": "ship"}).json()["id"]
    with browser_session(site, "bob", rid) as (web, csrf):
        none_yet = web.post(
            f"/requests/{rid}/passkey-options", data={"csrf": csrf, "decision": "approve"}
        )
        assert none_yet.status_code == 403 and "you have none" in none_yet.json()["detail"]
        forged = web.post(f"/requests/{rid}/passkey-options", data={"decision": "approve"})
        assert forged.status_code == 403
        assert (
            web.post(
                f"/requests/{rid}/passkey-options", data={"csrf": csrf, "decision": "maybe"}
            ).status_code
            == 422
        )
        options = web.post("/profile/passkeys/options", data={"csrf": csrf})
        assert options.status_code == 200
        o = options.json()
        assert o["rp"]["id"] == "127.0.0.1" and o["authenticatorSelection"]["userVerification"]
    with browser_session(site, "dave", rid) as (web, csrf):
        own = web.post(
            f"/requests/{rid}/passkey-options", data={"csrf": csrf, "decision": "approve"}
        )
        assert own.status_code == 403 and own.json()["detail"] == (
            "you cannot vote on your own request"
        )
