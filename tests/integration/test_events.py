"""Server-sent events: votes and decisions are pushed; reconnects resume."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

import httpx
from httpx_sse import connect_sse

WRITE = {"type": "sql.execute", "target": "pg/prod", "params": {"sql": "UPDATE t SET x = 1"}}


def follow(server, user: str, rid: str, out: queue.Queue, last_id: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {server.tokens[user]}"}
    if last_id:
        headers["Last-Event-ID"] = last_id
    with (
        httpx.Client(base_url=server.url, timeout=httpx.Timeout(10, read=30)) as c,
        connect_sse(c, "GET", f"/v1/requests/{rid}/events", headers=headers) as source,
    ):
        for sse in source.iter_sse():
            if not sse.data:  # keep-alive comments
                continue
            out.put((sse.id, sse.event, json.loads(sse.data)))
    out.put(None)


def collect(out: queue.Queue) -> list[tuple[str, str, dict[str, Any]]]:
    items = []
    while (item := out.get(timeout=20)) is not None:
        items.append(item)
    return items


def test_votes_and_the_decision_are_pushed(server, as_user) -> None:
    r = (
        as_user["frank"]
        .post("/v1/requests", json={"action": WRITE, "reason": "x", "ticket": "OPS-1"})
        .json()
    )
    out: queue.Queue = queue.Queue()
    listener = threading.Thread(target=follow, args=(server, "frank", r["id"], out))
    listener.start()
    first = out.get(timeout=10)
    assert first[1] == "request.submitted" and first[2]["request"]["still_needed"] == 2
    as_user["bob"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"})
    vote = out.get(timeout=10)
    assert vote[1] == "vote.cast" and vote[2]["actor"] == "bob"
    assert vote[2]["request"]["still_needed"] == 1
    as_user["carol"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"})
    rest = [out.get(timeout=10) for _ in range(3)]
    assert [e for _, e, _ in rest] == ["vote.cast", "request.approved", "grant.issued"]
    # the stream goes on while the request is approved (it may yet be used or revoked),
    # and ends once the request is final
    as_user["frank"].post(f"/v1/requests/{r['id']}/cancel")
    tail = collect(out)
    assert [e for _, e, _ in tail] == ["request.cancelled"]
    listener.join(5)
    assert rest[-1][2]["request"]["status"] == "approved"
    ids = [int(first[0]), int(vote[0])] + [int(i) for i, _, _ in rest]
    assert ids == sorted(ids)


def test_a_reconnecting_client_gets_what_it_missed(server, as_user) -> None:
    r = (
        as_user["frank"]
        .post("/v1/requests", json={"action": WRITE, "reason": "x", "ticket": "OPS-1"})
        .json()
    )
    out: queue.Queue = queue.Queue()
    follow_once = threading.Thread(target=follow, args=(server, "frank", r["id"], out))
    follow_once.start()
    submitted_id = out.get(timeout=10)[0]
    # the client goes away; meanwhile the request is decided
    as_user["bob"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "deny"})
    out2: queue.Queue = queue.Queue()
    follow(server, "frank", r["id"], out2, last_id=submitted_id)
    missed = collect(out2)
    assert [e for _, e, _ in missed] == ["vote.cast", "request.denied"]
    follow_once.join(10)
