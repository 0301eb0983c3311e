"""GitHub deployments: deliveries signed as GitHub signs them reach the webhook, become
requests, and the decision reaches a loopback server answering like GitHub's API (the
installation token exchange and the deployment protection rule callback)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import Page

from signoff.adapters.db import tables as t
from signoff.bootstrap import App, build
from signoff.services.dispatcher import dispatch_due
from signoff.services.ports import FixedClock
from signoff.services.scheduler import sweep

from ..conftest import FIXTURES, LiveServer, make_settings

APP_ID = "424242"
SECRET = "whsec-for-tests-3c9a"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC = KEY.public_key()
CALLBACK = re.compile(r"^/repos/([^/]+)/([^/]+)/actions/runs/(\d+)/deployment_protection_rule$")
EXCHANGE = re.compile(r"^/app/installations/(\d+)/access_tokens$")


class FakeGitHub:
    """Answers like GitHub's API: an installation token for a valid App JWT (201), the
    protection rule callback with that token (204); records every call. ``fail_reviews``
    callbacks are answered 502 first."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.issued: list[str] = []
        self.fail_reviews = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                call = {
                    "path": self.path,
                    "body": json.loads(raw) if raw else None,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                }
                fake.calls.append(call)
                status, answer = fake.answer(call)
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def answer(self, call: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        auth = call["headers"].get("authorization", "")
        if EXCHANGE.match(call["path"]):
            try:
                jwt.decode(auth.removeprefix("Bearer "), PUBLIC, algorithms=["RS256"])
            except jwt.InvalidTokenError:
                return 401, {"message": "A JSON web token could not be decoded"}
            token = f"ghs_test{len(self.issued) + 1}"
            self.issued.append(token)
            expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            return 201, {"token": token, "expires_at": expires}
        if CALLBACK.match(call["path"]):
            if auth.removeprefix("Bearer ") not in self.issued:
                return 401, {"message": "Bad credentials"}
            if self.fail_reviews > 0:
                self.fail_reviews -= 1
                return 502, {"message": "Server Error"}
            return 204, None
        return 404, {"message": "Not Found"}

    def exchanges(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if EXCHANGE.match(c["path"])]

    def reviews(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if CALLBACK.match(c["path"])]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    yield fake
    fake.close()


@pytest.fixture
def site(database_url: str, tmp_path: Path, github: FakeGitHub) -> Iterator[tuple[App, LiveServer]]:
    settings = make_settings(
        database_url,
        tmp_path,
        policies_dir=FIXTURES / "github" / "policies",
        users_file=FIXTURES / "github" / "users.yaml",
        github_app_id=APP_ID,
        github_private_key=KEY_PEM,
        github_webhook_secret=SECRET,
        github_api_url=github.url,
        outbox_backoff_seconds=0.01,
        outbox_backoff_max_seconds=0.01,
        worker_in_server=False,
    )
    app = build(settings)
    server = LiveServer(app).start()
    try:
        yield app, server
    finally:
        server.stop()
        app.close()


def payload(
    run: int = 42,
    environment: str = "production",
    sender: str = "octocat",
    repo: str = "acme/api",
    sha: str = "b" * 40,
) -> dict[str, Any]:
    """A deployment_protection_rule delivery as GitHub documents it."""
    return {
        "action": "requested",
        "environment": environment,
        "event": "push",
        "ref": "refs/heads/main",
        "sha": sha,
        "deployment_callback_url": (
            f"https://api.github.com/repos/{repo}/actions/runs/{run}/deployment_protection_rule"
        ),
        "deployment": {"id": 1, "sha": sha, "ref": "main", "environment": environment},
        "pull_requests": [
            {
                "number": 7,
                "html_url": f"https://github.com/{repo}/pull/7",
                "base": {"ref": "main", "sha": "a" * 40},
                "head": {"ref": "feature", "sha": sha},
            }
        ],
        "repository": {"full_name": repo, "html_url": f"https://github.com/{repo}"},
        "installation": {"id": 99},
        "sender": {"login": sender},
    }


def deliver(
    server: LiveServer,
    body: dict[str, Any] | bytes,
    delivery: str = "d-1",
    event: str = "deployment_protection_rule",
    secret: str | None = SECRET,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "User-Agent": "GitHub-Hookshot/test",
    }
    if secret is not None:
        mac = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        headers["X-Hub-Signature-256"] = f"sha256={mac}"
    return httpx.post(
        f"{server.url}/integrations/github/webhook", content=raw, headers=headers, timeout=30
    )


def deliveries(app: App) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(t.github_deliveries)).mappings()]


def count_requests(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.requests)).scalar_one())


def test_an_approval_reaches_the_waiting_run_with_an_installation_token(
    site: tuple[App, LiveServer], github: FakeGitHub
) -> None:
    app, server = site
    resp = deliver(server, payload())
    assert resp.status_code == 201, resp.text
    rid = resp.json()["request_id"]
    assert resp.json()["status"] == "pending"
    assert resp.json()["url"].endswith(f"/requests/{rid}")

    with server.client("carol") as carol:
        shown = carol.get(f"/v1/requests/{rid}").json()
        assert shown["requester"] == "github"  # octocat is nobody in the users file
        assert shown["action"] == {
            "type": "deploy",
            "target": "github/acme/api/production",
            "params": {"ref": "refs/heads/main", "sha": "b" * 40},
        }
        assert shown["context"]["links"] == [
            "https://github.com/acme/api/actions/runs/42",
            f"https://github.com/acme/api/compare/{'a' * 40}...{'b' * 40}",
            "https://github.com/acme/api/pull/7",
        ]
        assert shown["context"]["labels"]["environment"] == "production"
        assert "octocat" in shown["reason"]
        app.dispatch()
        assert github.calls == []  # nothing decided: GitHub is not called
        voted = carol.post(
            f"/v1/requests/{rid}/votes", json={"decision": "approve", "comment": "looks good"}
        )
        assert voted.status_code == 200, voted.text
        assert voted.json()["status"] == "approved"

    app.dispatch()
    [exchange] = github.exchanges()
    assert exchange["path"] == "/app/installations/99/access_tokens"
    assert exchange["headers"]["accept"] == "application/vnd.github+json"
    app_token = exchange["headers"]["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(app_token, PUBLIC, algorithms=["RS256"])
    assert claims["iss"] == APP_ID
    assert claims["iat"] <= time.time() - 50  # 60 s in the past, against clock drift
    assert 0 < claims["exp"] - claims["iat"] <= 600
    assert jwt.get_unverified_header(app_token)["alg"] == "RS256"

    [review] = github.reviews()
    assert review["path"] == "/repos/acme/api/actions/runs/42/deployment_protection_rule"
    assert review["headers"]["authorization"] == f"Bearer {github.issued[0]}"
    assert review["body"]["environment_name"] == "production"
    assert review["body"]["state"] == "approved"
    comment = review["body"]["comment"]
    assert comment.startswith("Approved in Signoff by carol: looks good")
    assert comment.endswith(f"{app.settings.public_url}/requests/{rid}")
    assert deliveries(app)[0]["reported_at"] is not None

    # told once: a later round sends nothing more
    app.dispatch()
    assert len(github.reviews()) == 1

    # another run, decided later: the installation token is kept, not asked for again
    second = deliver(server, payload(run=43, sha="c" * 40), delivery="d-2")
    assert second.status_code == 201, second.text
    with server.client("bob") as bob:
        bob.post(
            f"/v1/requests/{second.json()['request_id']}/votes",
            json={"decision": "approve", "comment": ""},
        ).raise_for_status()
    app.dispatch()
    assert len(github.exchanges()) == 1
    assert [r["path"] for r in github.reviews()][-1].endswith("/runs/43/deployment_protection_rule")
    assert github.reviews()[-1]["body"]["comment"].startswith("Approved in Signoff by bob\n")


def test_a_denial_rejects_and_who_triggered_it_cannot_approve_it(
    site: tuple[App, LiveServer], github: FakeGitHub
) -> None:
    app, server = site
    github.fail_reviews = 1  # GitHub has a bad moment: the dispatcher tries again
    resp = deliver(server, payload(sender="Dave-GH"))
    assert resp.status_code == 201, resp.text
    rid = resp.json()["request_id"]
    with server.client("dave") as dave:
        mine = dave.get(f"/v1/requests/{rid}").json()
        assert mine["requester"] == "dave"  # his GitHub login, from the users file
        own = dave.post(f"/v1/requests/{rid}/votes", json={"decision": "approve"})
        assert own.status_code == 403
        assert own.headers["content-type"] == "application/problem+json"
    with server.client("bob") as bob:
        bob.post(
            f"/v1/requests/{rid}/votes", json={"decision": "deny", "comment": "too broad"}
        ).raise_for_status()

    first = app.dispatch()
    assert first.retried == 1
    time.sleep(0.05)
    assert app.dispatch().delivered == 1
    reviews = github.reviews()
    assert len(reviews) == 2  # the failed attempt and its retry
    assert reviews[-1]["body"] == {
        "environment_name": "production",
        "state": "rejected",
        "comment": f"Rejected in Signoff: denied by bob: too broad\n\n"
        f"{app.settings.public_url}/requests/{rid}",
    }


def test_a_deploy_the_policy_allows_is_approved_at_once(
    site: tuple[App, LiveServer], github: FakeGitHub
) -> None:
    app, server = site
    resp = deliver(server, payload(environment="staging"))
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "approved"
    app.dispatch()
    [review] = github.reviews()
    assert review["body"]["state"] == "approved"
    assert review["body"]["environment_name"] == "staging"
    assert review["body"]["comment"].startswith("Approved in Signoff by policy 'github-staging'")


def test_forged_unsigned_and_replayed_deliveries_change_nothing(
    site: tuple[App, LiveServer], github: FakeGitHub
) -> None:
    app, server = site
    for forged in (
        deliver(server, payload(), secret=None),
        deliver(server, payload(), secret="not-the-secret"),
    ):
        assert forged.status_code == 401
        assert forged.headers["content-type"] == "application/problem+json"
    # a signature of another body
    raw = json.dumps(payload()).encode()
    mac = hmac.new(SECRET.encode(), raw + b" ", hashlib.sha256).hexdigest()
    tampered = httpx.post(
        f"{server.url}/integrations/github/webhook",
        content=raw,
        headers={
            "X-GitHub-Event": "deployment_protection_rule",
            "X-GitHub-Delivery": "d-x",
            "X-Hub-Signature-256": f"sha256={mac}",
        },
    )
    assert tampered.status_code == 401
    assert count_requests(app) == 0

    first = deliver(server, payload())
    assert first.status_code == 201
    again = deliver(server, payload())  # GitHub's "Redeliver"
    assert again.status_code == 200
    assert again.json()["replay"] is True
    assert again.json()["request_id"] == first.json()["request_id"]
    same_run = deliver(server, payload(), delivery="d-other")
    assert same_run.status_code == 200 and same_run.json()["replay"] is True
    assert count_requests(app) == 1
    assert len(deliveries(app)) == 1

    ping = deliver(server, {"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping")
    assert ping.status_code == 200 and ping.json()["event"] == "ping"
    other = deliver(server, {"action": "created"}, event="deployment_status")
    assert other.status_code == 200 and other.json()["ignored"] is True

    broken = payload(run=50)
    del broken["sha"]
    missing = deliver(server, broken, delivery="d-3")
    assert missing.status_code == 422
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["field"] == "sha"
    not_json = deliver(server, b"{not json", delivery="d-4")
    assert not_json.status_code in (400, 422)
    assert not_json.headers["content-type"] == "application/problem+json"
    elsewhere = payload(run=51)
    elsewhere["deployment_callback_url"] = "https://evil.example/steal"
    assert deliver(server, elsewhere, delivery="d-5").status_code == 422
    huge = payload(run=52)
    huge["deployment"]["description"] = "x" * (app.settings.max_body_bytes + 1)
    too_big = deliver(server, huge, delivery="d-6")
    assert too_big.status_code == 413
    assert too_big.headers["content-type"] == "application/problem+json"
    assert count_requests(app) == 1
    app.dispatch()
    assert github.calls == []  # nothing decided, nobody called


def test_the_private_key_and_secret_appear_nowhere(
    site: tuple[App, LiveServer], github: FakeGitHub
) -> None:
    app, server = site
    rid = deliver(server, payload()).json()["request_id"]
    with server.client("alice") as alice:
        with server.client("bob") as bob:
            bob.post(f"/v1/requests/{rid}/votes", json={"decision": "deny"}).raise_for_status()
        app.dispatch()
        seen = [
            alice.get(f"/v1/requests/{rid}").text,
            alice.get("/v1/audit", params={"limit": 100}).text,
            alice.get("/openapi.json").text,
            repr(app.settings),
            repr(app.channels["github"].__dict__),
        ]
    secret_line = KEY_PEM.splitlines()[1]
    for text in seen:
        assert secret_line not in text
        assert SECRET not in text


def test_a_deploy_nobody_decides_is_rejected_when_it_times_out(
    site: tuple[App, LiveServer], github: FakeGitHub
) -> None:
    app, server = site
    rid = deliver(server, payload()).json()["request_id"]
    later = FixedClock(datetime.now(UTC) + timedelta(hours=2))  # the stage's 1h has passed
    svc = dataclasses.replace(app.services, clock=later)
    assert sweep(svc) == 1
    dispatch_due(svc, app.channels, app.retry)
    [review] = github.reviews()
    assert review["body"]["state"] == "rejected"
    assert review["body"]["comment"].startswith("Rejected in Signoff: timed out")
    assert f"/requests/{rid}" in review["body"]["comment"]


def test_the_request_page_shows_the_run_the_changes_and_the_commits(
    site: tuple[App, LiveServer], github: FakeGitHub, page: Page
) -> None:
    app, server = site
    body = payload(sender="Dave-GH")
    body["commits"] = [{"id": "c" * 40, "message": "Bump the API to 2.4\n\nWhy, at length."}]
    rid = deliver(server, body).json()["request_id"]
    link = app.signin_link("carol", f"/requests/{rid}")
    page.goto(link.replace(app.settings.public_url, server.url))
    text = page.inner_text("main")
    assert "deploy on github/acme/api/production" in text
    assert "https://github.com/acme/api/actions/runs/42" in text
    assert f"https://github.com/acme/api/compare/{'a' * 40}...{'b' * 40}" in text
    assert "environment=production" in text and "sender=Dave-GH" in text
    assert f"{'c' * 12}  Bump the API to 2.4" in text
    assert "Why, at length." not in text  # the first line of each commit only
    assert page.get_by_role("button", name="Approve").is_visible()


def test_a_second_run_of_the_same_deploy_waits_on_the_same_request(
    site: tuple[App, LiveServer], github: FakeGitHub
) -> None:
    app, server = site
    first = deliver(server, payload(run=42)).json()
    rerun = deliver(server, payload(run=44), delivery="d-2")  # "Re-run jobs" on GitHub
    assert rerun.status_code == 201, rerun.text
    assert rerun.json()["folded"] is True
    assert rerun.json()["request_id"] == first["request_id"]
    assert count_requests(app) == 1
    with server.client("carol") as carol:
        carol.post(
            f"/v1/requests/{first['request_id']}/votes", json={"decision": "approve"}
        ).raise_for_status()
    app.dispatch()
    assert sorted(r["path"].split("/")[6] for r in github.reviews()) == ["42", "44"]
    assert {r["body"]["state"] for r in github.reviews()} == {"approved"}
    assert all(d["reported_at"] is not None for d in deliveries(app))


def test_a_form_encoded_delivery_is_read_from_its_payload_field(
    site: tuple[App, LiveServer], github: FakeGitHub
) -> None:
    # The App's webhook may be set to application/x-www-form-urlencoded: GitHub then
    # sends payload=<the JSON>, signed as sent.
    app, server = site
    form = urllib.parse.urlencode({"payload": json.dumps(payload(run=51))}).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-GitHub-Event": "deployment_protection_rule",
        "X-GitHub-Delivery": "form-1",
        "X-Hub-Signature-256": "sha256="
        + hmac.new(SECRET.encode(), form, hashlib.sha256).hexdigest(),
    }
    url = f"{server.url}/integrations/github/webhook"
    resp = httpx.post(url, content=form, headers=headers, timeout=30)
    assert resp.status_code == 201, resp.text
    with server.client("carol") as carol:
        shown = carol.get(f"/v1/requests/{resp.json()['request_id']}").json()
    assert shown["action"]["target"] == "github/acme/api/production"
    assert [d["run_id"] for d in deliveries(app)] == [51]
    # a form without its payload field says so
    empty = b"other=1"
    headers["X-Hub-Signature-256"] = (
        "sha256=" + hmac.new(SECRET.encode(), empty, hashlib.sha256).hexdigest()
    )
    headers["X-GitHub-Delivery"] = "form-2"
    refused = httpx.post(url, content=empty, headers=headers, timeout=30)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "payload"


def test_a_delivery_nothing_can_store_is_a_422_naming_the_field(
    site: tuple[App, LiveServer], github: FakeGitHub
) -> None:
    app, server = site
    too_far = "https://api.github.com/repos/acme/api/actions/runs/" + "9" * 25
    cases = [
        ({**payload(run=61), "environment": "prod\u0000uction"}, "environment"),
        ({**payload(run=62), "installation": {"id": 2**70}}, "installation.id"),
        (
            {**payload(), "deployment_callback_url": too_far + "/deployment_protection_rule"},
            "deployment_callback_url",
        ),
    ]
    for i, (body, field) in enumerate(cases):
        resp = deliver(server, body, delivery=f"bad-{i}")
        assert resp.status_code == 422, (field, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["field"] == field, resp.text
    long = deliver(server, payload(run=63), delivery="d" * 101)
    assert long.status_code == 422 and long.json()["field"] == "X-GitHub-Delivery"
    assert "not a delivery id (at most 100 characters)" in long.json()["detail"]
    assert count_requests(app) == 0 and deliveries(app) == []


def test_a_rerun_of_a_decided_run_is_asked_anew_and_hears_back(
    site: tuple[App, LiveServer], github: FakeGitHub
) -> None:
    # "Re-run jobs" keeps the run's id (a new attempt): GitHub sends a new delivery for
    # the same run and environment, and waits again.
    app, server = site
    first = deliver(server, payload(run=70), delivery="attempt-1").json()
    with server.client("bob") as bob:
        bob.post(
            f"/v1/requests/{first['request_id']}/votes",
            json={"decision": "deny", "comment": "not during the freeze"},
        ).raise_for_status()
    app.dispatch()
    assert [r["body"]["state"] for r in github.reviews()] == ["rejected"]

    again = deliver(server, payload(run=70), delivery="attempt-2")
    assert again.status_code == 201, again.text
    second = again.json()
    assert second["request_id"] != first["request_id"] and second["status"] == "pending"
    # GitHub's redelivery of either attempt changes nothing more
    for delivery in ("attempt-2", "attempt-1"):
        replay = deliver(server, payload(run=70), delivery=delivery)
        assert replay.status_code == 200 and replay.json()["replay"] is True, replay.text
        assert replay.json()["request_id"] == second["request_id"]
    assert count_requests(app) == 2
    with server.client("carol") as carol:
        carol.post(
            f"/v1/requests/{second['request_id']}/votes", json={"decision": "approve"}
        ).raise_for_status()
    app.dispatch()
    reviews = github.reviews()
    assert [r["body"]["state"] for r in reviews] == ["rejected", "approved"]
    assert reviews[-1]["path"] == "/repos/acme/api/actions/runs/70/deployment_protection_rule"
    assert second["request_id"] in reviews[-1]["body"]["comment"]
