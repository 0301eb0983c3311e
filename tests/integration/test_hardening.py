"""Bad input gets a precise 4xx and breaks nothing for anyone else: bounds at the
boundary, NUL refused the same on both databases, cursors and sequence numbers checked,
body and header limits as documented. Each case here once answered 500 or was stored."""

from __future__ import annotations

import base64
import json
import socket
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from .test_api import WRITE, problem_of, write_request


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


def test_deep_params_are_refused_and_nothing_is_stored(as_user) -> None:
    action = {**WRITE, "params": {"sql": "select 1", "x": deep(300)}}
    resp = as_user["dave"].post("/v1/requests", json={"action": action, "reason": "r"})
    body = problem_of(resp, 422)
    assert "deeper than 32 levels" in body["detail"] and body["field"] == "params"
    listing = as_user["alice"].get("/v1/requests")
    assert listing.status_code == 200 and listing.json()["items"] == []


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"n": 2**64}, "beyond 64 bits"),
        ({"k" * 201: 1}, "key longer than 200"),
        ({"list": list(range(10_001))}, "more than 10000 values"),
    ],
)
def test_params_beyond_their_bounds_name_the_bound(as_user, params, says) -> None:
    resp = as_user["dave"].post(
        "/v1/requests", json={"action": {**WRITE, "params": params}, "reason": "r"}
    )
    assert says in problem_of(resp, 422)["detail"]


@pytest.mark.parametrize("field", ["reason", "ticket", "type", "target", "param", "label"])
def test_nul_is_refused_in_every_text_on_both_databases(as_user, field) -> None:
    action = {**WRITE, "params": {"sql": "select 1"}}
    body: dict[str, Any] = {"action": action, "reason": "why", "ticket": "OPS-1"}
    if field in ("reason", "ticket"):
        body[field] = "a\x00b"
    elif field == "param":
        action["params"] = {"sql": "select \x00 1"}
    elif field == "label":
        body["context"] = {"labels": {"svc": "a\x00"}}
    else:
        action[field] = "a\x00b"
    assert "NUL" in problem_of(as_user["dave"].post("/v1/requests", json=body), 422)["detail"]


def test_nul_in_comments_paths_and_queries_is_refused(as_user) -> None:
    r = write_request(as_user["dave"], row=5)
    resp = as_user["bob"].post(
        f"/v1/requests/{r['id']}/votes", json={"decision": "approve", "comment": "ok\x00"}
    )
    assert "NUL" in problem_of(resp, 422)["detail"]
    for path in (
        "/v1/requests/abc%00def",
        "/v1/requests?status=pending%00",
        "/v1/requests?cursor=%00",
    ):
        assert "NUL" in problem_of(as_user["bob"].get(path), 400)["detail"]
    assert as_user["bob"].get(f"/v1/requests/{r['id']}").json()["votes"] == []


def cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "bad",
    [
        cursor("2026-11-23T10:00:00", "x"),  # no time zone
        cursor("2026-11-23", "x"),  # a date only
        cursor("2026-11-23T10:00:00+00:00", 7),
        "!!!",
        base64.urlsafe_b64encode(b"[" * 5000).decode(),
    ],
)
def test_cursors_this_server_did_not_make_are_invalid_input(as_user, bad) -> None:
    resp = as_user["alice"].get("/v1/requests", params={"cursor": bad})
    assert problem_of(resp, 422)["field"] == "cursor"


def test_sequence_numbers_beyond_64_bits_are_refused(as_user) -> None:
    problem_of(as_user["alice"].get("/v1/audit", params={"after": 2**63}), 422)
    r = write_request(as_user["dave"], row=6)
    events = f"/v1/requests/{r['id']}/events"
    problem_of(as_user["dave"].get(events, params={"after": 2**63}), 422)
    for value in ("1" * 23, "-1", "12a", "\u0661\u0662".encode()):  # Arabic-Indic digits
        resp = as_user["dave"].get(events, headers={"Last-Event-ID": value})
        assert "Last-Event-ID" in problem_of(resp, 422)["detail"]


def test_a_chunked_body_over_the_limit_is_413(server, as_user) -> None:
    limit = server.app.settings.max_body_bytes

    def chunks():
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    resp = as_user["dave"].post(
        "/v1/requests", content=chunks(), headers={"Content-Type": "application/json"}
    )
    problem_of(resp, 413)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "latin-1"])
def test_a_json_body_must_be_utf8_without_a_bom(as_user, encoding) -> None:
    text = json.dumps(
        {"action": {**WRITE, "params": {"sql": "select 'é'"}}, "reason": "é"}, ensure_ascii=False
    )
    resp = as_user["dave"].post(
        "/v1/requests",
        content=text.encode(encoding),
        headers={"Content-Type": "application/json"},
    )
    assert "UTF-8" in problem_of(resp, 400)["detail"]


def test_oversized_headers_are_431(server, as_user) -> None:
    resp = as_user["dave"].get("/v1/requests", headers={"X-Big": "a" * 100_000})
    problem_of(resp, 431)
    # and the server still answers everyone else
    assert as_user["bob"].get("/v1/requests").status_code == 200


def test_a_stored_request_from_before_the_bounds_still_reads(server, as_user) -> None:
    """Data stored before the bounds (or by other means) must not break reads: deep
    parts are elided in what the API shows."""
    from signoff.adapters.db import tables as t

    r = write_request(as_user["dave"], row=9)
    with server.app.engine.begin() as conn:
        conn.execute(
            t.requests.update()
            .where(t.requests.c.id == r["id"])
            .values(action_params={"sql": "select 1", "x": deep(300)})
        )
    for who in ("dave", "bob"):
        got = as_user[who].get(f"/v1/requests/{r['id']}")
        assert got.status_code == 200, got.text
    assert as_user["alice"].get("/v1/requests").status_code == 200
    vote = as_user["bob"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"})
    assert vote.status_code == 200, vote.text


def test_raw_socket_garbage_gets_an_answer_not_a_crash(server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        head = b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        sock.sendall(head + b"Content-Type: application/json\r\n\r\n\xff\xfe\x00\x01\x02")
        answer = sock.recv(1000)
    assert answer.startswith(b"HTTP/1.1 4")
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_approval_links_answer_every_token_with_a_page(server) -> None:
    """Tokens from nowhere, and tokens signed correctly that name unknown people,
    requests or decisions: every answer is a page for people (HTML, 4xx), never a 500."""
    from datetime import UTC, datetime, timedelta

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    links = server.app.links
    text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)

    @st.composite
    def signed(draw: st.DrawFn) -> str:
        return links.issue(
            draw(st.sampled_from(["bob", "nobody", "", "bob\u202e"])),
            draw(text),
            draw(st.sampled_from(["approve", "deny"])),
            datetime.now(UTC) + timedelta(minutes=draw(st.integers(-5, 5))),
        )

    tokens = st.one_of(text, signed(), signed().map(lambda t: t[:-4] + "AAAA"))

    @given(token=tokens, post=st.booleans(), comment=text)
    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def probe(token: str, post: bool, comment: str) -> None:
        url = f"{server.url}/links/{quote(token, safe='')}"
        with httpx.Client(timeout=10) as web:
            resp = web.post(url, data={"comment": comment}) if post else web.get(url)
        assert resp.status_code < 500, (token, resp.text[:300])
        if resp.status_code >= 400 and resp.status_code != 404:  # ("/" in a token: no page)
            assert resp.headers.get("content-type", "").startswith("text/html"), resp.text[:200]

    probe()
