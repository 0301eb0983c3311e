"""Slack, against a fake Slack Web API on loopback and signed interactivity calls."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from signoff.bootstrap import build
from signoff.domain.requests import Decision, Status
from signoff.services import requests as use_cases
from tests.conftest import reload

from ..conftest import LiveServer, bound_socket, make_settings

SECRET = "slack-signing-secret-for-tests"
SLACK_IDS = {
    "U_DAVE": "dave@example.com",
    "U_BOB": "bob@example.com",
    "U_CAROL": "carol@example.com",
}
WRITE = {
    "type": "sql.execute",
    "target": "pg/prod",
    "params": {"sql": "UPDATE t SET note = '<@U_ALL> *bold*' WHERE id = 1"},
}


class FakeSlack:
    """Answers like Slack's Web API and records every call (and response_url posts)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.ephemeral: list[dict[str, Any]] = []
        fake = self
        counter = iter(range(1, 10**6))

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, data: dict[str, Any]) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _args(self) -> dict[str, Any]:
                url = urlparse(self.path)
                args: dict[str, Any] = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if raw:
                    if "json" in (self.headers.get("Content-Type") or ""):
                        args.update(json.loads(raw))
                    else:
                        args.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
                return args

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                path = urlparse(self.path).path
                args = self._args()
                if path.startswith("/response/"):
                    fake.ephemeral.append(args)
                    self._answer({"ok": True})
                    return
                method = path.rsplit("/", 1)[-1]
                fake.calls.append((method, args))
                if method == "chat.postMessage":
                    to = str(args["channel"])
                    where = "D" + to[1:] if to.startswith("U") else "C0PROD"  # a DM
                    self._answer({"ok": True, "channel": where, "ts": f"1700.{next(counter)}"})
                elif method == "chat.update":
                    self._answer({"ok": True, "channel": args["channel"], "ts": args["ts"]})
                elif method == "users.info":
                    uid = args["user"]
                    self._answer(
                        {"ok": True, "user": {"id": uid, "profile": {"email": SLACK_IDS[uid]}}}
                    )
                elif method == "users.lookupByEmail":
                    found = [uid for uid, mail in SLACK_IDS.items() if mail == args["email"]]
                    if found:
                        self._answer({"ok": True, "user": {"id": found[0]}})
                    else:
                        self._answer({"ok": False, "error": "users_not_found"})
                else:
                    self._answer({"ok": True})

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, method: str) -> list[dict[str, Any]]:
        return [args for m, args in self.calls if m == method]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def slack_app(database_url: str, tmp_path: Path, slack: FakeSlack):
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = build(
        make_settings(
            database_url,
            tmp_path,
            channels="slack:#prod-approvals",
            public_url=url,
            slack_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=f"{slack.url}/api/",
        )
    )
    return LiveServer(app, sock).start()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


def interact(
    server: LiveServer,
    slack: FakeSlack,
    payload: dict[str, Any],
    secret: str = SECRET,
    age: int = 0,
) -> httpx.Response:
    payload = {"response_url": f"{slack.url}/response/1", **payload}
    body = urlencode({"payload": json.dumps(payload)})
    ts = str(int(time.time()) - age)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return httpx.post(
        f"{server.url}/slack/interactions",
        content=body,
        headers={
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
        timeout=10,
    )


def click(server, slack, user: str, action: str, rid: str, **extra: Any) -> httpx.Response:
    return interact(
        server,
        slack,
        {
            "type": "block_actions",
            "user": {"id": user},
            "trigger_id": "trig-1",
            "actions": [{"action_id": action, "value": rid}],
            **extra,
        },
    )


def test_slack_message_buttons_rules_and_updates_in_place(
    database_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    server = slack_app(database_url, tmp_path, slack)
    try:
        svc = server.app.services
        with server.client("dave") as c:
            rid = c.post(
                "/v1/requests", json={"action": WRITE, "reason": "fix <script>", "ticket": "OPS-3"}
            ).json()["id"]
        server.app.dispatch()
        posted = slack.named("chat.postMessage")
        assert len(posted) == 1 and posted[0]["channel"] == "#prod-approvals"
        blocks = json.dumps(posted[0]["blocks"])
        assert "fix &lt;script&gt;" in blocks and "&lt;@U_ALL&gt;" in blocks  # escaped
        actions = next(b for b in posted[0]["blocks"] if b["type"] == "actions")
        assert [e["action_id"] for e in actions["elements"]] == ["approve", "deny"]

        # the requester clicks Approve: refused, and told why, privately
        assert click(server, slack, "U_DAVE", "approve", rid).status_code == 200
        assert slack.ephemeral[-1]["text"] == ("Not recorded: you cannot vote on your own request")
        # forged and replayed calls are refused
        forged = interact(server, slack, {"type": "block_actions"}, secret="wrong")
        assert forged.status_code == 401
        stale = interact(server, slack, {"type": "block_actions"}, age=600)
        assert stale.status_code == 401

        assert click(server, slack, "U_CAROL", "approve", rid).status_code == 200
        assert [v.voter for v in reload(svc, rid).votes] == ["carol"]
        server.app.dispatch()
        updates = slack.named("chat.update")
        assert (updates[-1]["channel"], updates[-1]["ts"]) == ("C0PROD", "1700.1")
    finally:
        server.stop()
        server.app.close()

    # a restart: a new process state on the same database still updates the same message
    again = slack_app(database_url, tmp_path, slack)
    try:
        use_cases.cast_vote(
            again.app.services, again.app.directory.user("bob"), rid, Decision.APPROVE, "ok"
        )
        again.app.dispatch()
        last = slack.named("chat.update")[-1]
        assert (last["channel"], last["ts"]) == ("C0PROD", "1700.1")
        assert len(slack.named("chat.postMessage")) == 1
        assert not any(b["type"] == "actions" for b in last["blocks"])  # decided: no buttons
        assert "Approved" in json.dumps(last["blocks"])
    finally:
        again.stop()
        again.app.close()


def test_deny_asks_for_a_reason_in_a_modal(
    database_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    server = slack_app(database_url, tmp_path, slack)
    try:
        with server.client("dave") as c:
            rid = c.post(
                "/v1/requests", json={"action": WRITE, "reason": "r", "ticket": "OPS-3"}
            ).json()["id"]
        assert click(server, slack, "U_BOB", "deny", rid).status_code == 200
        opened = slack.named("views.open")
        assert opened and opened[0]["trigger_id"] == "trig-1"
        view = opened[0]["view"]
        submitted = interact(
            server,
            slack,
            {
                "type": "view_submission",
                "user": {"id": "U_BOB"},
                "view": {
                    "private_metadata": view["private_metadata"],
                    "state": {"values": {"reason": {"text": {"value": "not during the sale"}}}},
                },
            },
        )
        assert submitted.status_code == 200
        r = reload(server.app.services, rid)
        assert r.status is Status.DENIED
        assert [(v.voter, v.comment) for v in r.votes] == [("bob", "not during the sale")]
    finally:
        server.stop()
        server.app.close()


def test_malformed_calls_get_an_answer_not_an_error(
    database_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    """Each of these once answered 500: a timestamp that is not a number (no valid
    signature needed), signed payloads of unexpected shape, a click by someone Slack
    cannot tell us about, unreadable form metadata."""
    server = slack_app(database_url, tmp_path, slack)
    try:
        with server.client("dave") as c:
            rid = c.post(
                "/v1/requests", json={"action": WRITE, "reason": "r", "ticket": "OPS-3"}
            ).json()["id"]
        unsigned = httpx.post(
            f"{server.url}/slack/interactions",
            content="payload=%7B%7D",
            headers={"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        )
        assert unsigned.status_code == 401
        shapes: list[Any] = [
            [],
            None,
            "text",
            {"type": "block_actions", "user": "U_BOB", "actions": [{"value": rid}]},
            {"type": "block_actions", "user": {"id": "U_BOB"}, "actions": [None]},
            {"type": "block_actions", "user": {"id": "U_BOB"}, "actions": "approve"},
            {"type": "block_actions", "user": {"id": ["U_BOB"]}},
            {"type": "view_submission", "user": {"id": "U_BOB"}, "view": "x"},
            {"type": "view_submission", "user": {"id": "U_BOB"}, "view": {"private_metadata": "{"}},
            {"type": "view_submission", "user": {"id": "U_BOB"}, "view": {"private_metadata": "1"}},
        ]
        for shape in shapes:
            body = urlencode({"payload": json.dumps(shape)})
            ts = str(int(time.time()))
            sig = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
            resp = httpx.post(
                f"{server.url}/slack/interactions",
                content=body,
                headers={
                    "X-Slack-Request-Timestamp": ts,
                    "X-Slack-Signature": sig,
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            assert resp.status_code == 200, (shape, resp.text)
        # someone Slack does not know (users.info fails): told privately, nothing counted
        assert click(server, slack, "U_NOBODY", "approve", rid).status_code == 200
        assert "not linked" in slack.ephemeral[-1]["text"]
        assert reload(server.app.services, rid).votes == []
    finally:
        server.stop()
        server.app.close()


def test_a_deny_click_while_slack_is_unreachable_says_so(
    database_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    sock = bound_socket()
    closed = bound_socket()  # bound, never listening: connections are refused
    app = build(
        make_settings(
            database_url,
            tmp_path,
            channels="log",
            public_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            slack_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=f"http://127.0.0.1:{closed.getsockname()[1]}/api/",
            slack_users={"U_BOB": "bob"},
        )
    )
    server = LiveServer(app, sock).start()
    try:
        with server.client("dave") as c:
            rid = c.post(
                "/v1/requests", json={"action": WRITE, "reason": "r", "ticket": "OPS-3"}
            ).json()["id"]
        assert click(server, slack, "U_BOB", "deny", rid).status_code == 200
        assert "Could not open the deny form" in slack.ephemeral[-1]["text"]
        assert f"signoff deny {rid}" in slack.ephemeral[-1]["text"]
    finally:
        server.stop()
        app.close()
        closed.close()


def test_generated_payloads_signed_or_not_never_break_the_endpoint(
    database_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    server = slack_app(database_url, tmp_path, slack)
    leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))
    shaped = st.fixed_dictionaries(
        {"type": st.sampled_from(["block_actions", "view_submission", "shortcut"])},
        optional={
            "user": st.one_of(
                leaf, st.fixed_dictionaries({"id": st.sampled_from(["U_BOB", "U_X"])})
            ),
            "actions": st.lists(
                st.one_of(leaf, st.dictionaries(st.text(max_size=10), leaf)), max_size=2
            ),
            "view": st.one_of(
                leaf, st.dictionaries(st.sampled_from(["private_metadata", "state"]), leaf)
            ),
            "trigger_id": leaf,
        },
    )
    payloads = st.one_of(
        st.recursive(leaf, lambda c: st.lists(c, max_size=3), max_leaves=5), shaped
    )

    @given(payload=payloads, signed=st.booleans(), stamp=st.sampled_from(["now", "x", "", "1e9"]))
    @settings(
        max_examples=80,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def probe(payload: Any, signed: bool, stamp: str) -> None:
        body = urlencode({"payload": json.dumps(payload)})
        ts = str(int(time.time())) if stamp == "now" else stamp
        sig = (
            SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
            if signed
            else "v0=0"
        )
        resp = httpx.post(
            f"{server.url}/slack/interactions",
            content=body,
            headers={"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig},
            timeout=10,
        )
        assert resp.status_code in (200, 400, 401), resp.text[:300]
        if not (signed and stamp == "now"):
            assert resp.status_code == 401

    try:
        probe()
    finally:
        server.stop()
        server.app.close()
