"""The HTTP API against a real server on loopback, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import sqlalchemy as sa

from signoff.adapters.db import tables as t

WRITE = {"type": "sql.execute", "target": "pg/prod", "params": {"sql": "UPDATE t SET x = 1"}}


def submit(client: httpx.Client, action: dict[str, Any], **extra: Any) -> dict[str, Any]:
    resp = client.post("/v1/requests", json={"action": action, **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


def write_request(client: httpx.Client, row: int = 1) -> dict[str, Any]:
    action = {**WRITE, "params": {"sql": f"UPDATE t SET x = 1 WHERE id = {row}"}}
    return submit(client, action, reason="fix a row", ticket="OPS-42")


def problem_of(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["detail"] and body["type"].startswith("https://")
    return body


def test_allow_policy_approves_at_once_with_a_grant(as_user) -> None:
    r = submit(
        as_user["frank"],
        {"type": "sql.execute", "target": "pg/prod", "params": {"sql": "select 1"}},
    )
    assert r["status"] == "approved" and r["policy"] == "read-only-sql"
    assert r["grant"]["token"] and r["grant"]["uses_left"] == 1
    assert len(r["policy_set_digest"]) == 64


def test_deny_policy_refuses_at_once_and_is_recorded(as_user) -> None:
    r = submit(as_user["frank"], {"type": "sql.drop", "target": "pg/prod"})
    assert r["status"] == "denied" and r["policy"] == "forbidden-drop"
    full = as_user["frank"].get(f"/v1/requests/{r['id']}").json()
    assert [e["type"] for e in full["timeline"]] == ["request.submitted", "request.denied"]


def test_request_rules_reason_and_ticket(as_user) -> None:
    resp = as_user["frank"].post("/v1/requests", json={"action": WRITE, "ticket": "OPS-1"})
    assert "requires a reason" in problem_of(resp, 422)["detail"]
    resp = as_user["frank"].post(
        "/v1/requests", json={"action": WRITE, "reason": "x", "ticket": "JIRA-1"}
    )
    body = problem_of(resp, 422)
    assert "ticket matching" in body["detail"] and body["field"] == "ticket"


def test_quorum_of_two_distinct_people(as_user) -> None:
    r = write_request(as_user["frank"])
    assert r["status"] == "pending" and r["still_needed"] == 2
    assert r["awaiting"] == ["bob", "carol"]
    r = as_user["bob"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"}).json()
    assert r["status"] == "pending" and r["still_needed"] == 1
    again = as_user["bob"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"})
    assert problem_of(again, 409)["type"].endswith("/already-voted")
    r = (
        as_user["carol"]
        .post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve", "comment": "ok"})
        .json()
    )
    assert r["status"] == "approved"
    assert r["grant"]["token"] is None  # only the requester (or an admin) sees the token
    mine = as_user["frank"].get(f"/v1/requests/{r['id']}").json()
    assert mine["grant"]["token"]


def test_requester_cannot_approve_own_request(as_user) -> None:
    r = submit(as_user["carol"], {"type": "deploy", "target": "prod/api"})
    resp = as_user["carol"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"})
    assert problem_of(resp, 403)["type"].endswith("/self-approval")


def test_person_in_two_groups_counts_once(as_user) -> None:
    r = submit(as_user["frank"], {"type": "deploy", "target": "prod/api"})
    r = as_user["carol"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"}).json()
    assert r["status"] == "pending" and r["still_needed"] == 1
    r = as_user["dave"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"}).json()
    assert r["status"] == "approved"


def test_only_current_stage_approvers_vote_and_stages_advance(as_user) -> None:
    r = submit(as_user["frank"], {"type": "secret.read", "target": "vault/db"})
    early = as_user["erin"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"})
    assert problem_of(early, 403)["type"].endswith("/not-eligible")
    outsider = as_user["dave"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"})
    problem_of(outsider, 403)
    r = as_user["bob"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"}).json()
    assert r["status"] == "pending" and r["current_stage"] == 1 and r["awaiting"] == ["erin"]
    r = as_user["erin"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"}).json()
    assert r["status"] == "approved"


def test_a_deny_ends_the_request_and_later_votes_conflict(as_user) -> None:
    r = write_request(as_user["frank"])
    r = (
        as_user["bob"]
        .post(f"/v1/requests/{r['id']}/votes", json={"decision": "deny", "comment": "not today"})
        .json()
    )
    assert r["status"] == "denied"
    late = as_user["carol"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"})
    body = problem_of(late, 409)
    assert body["type"].endswith("/invalid-transition") and "denied" in body["detail"]


def test_cancel_by_requester_or_admin_only(as_user) -> None:
    r = write_request(as_user["frank"])
    problem_of(as_user["bob"].post(f"/v1/requests/{r['id']}/cancel", json={}), 403)
    r = as_user["frank"].post(f"/v1/requests/{r['id']}/cancel", json={"comment": "oops"}).json()
    assert r["status"] == "cancelled"
    problem_of(as_user["frank"].post(f"/v1/requests/{r['id']}/cancel"), 409)
    approved = submit(as_user["frank"], {"type": "http.call", "target": "svc/x"})
    r = as_user["alice"].post(f"/v1/requests/{approved['id']}/cancel").json()
    assert r["status"] == "cancelled" and r["grant"]["revoked"] is True


def test_redeem_exact_action_once(as_user) -> None:
    r = write_request(as_user["frank"])
    for who in ("bob", "carol"):
        as_user[who].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"})
    token = as_user["frank"].get(f"/v1/requests/{r['id']}").json()["grant"]["token"]
    approved = r["action"]
    changed = {**approved, "params": {"sql": approved["params"]["sql"] + " "}}
    resp = as_user["frank"].post("/v1/grants/redeem", json={"token": token, "action": changed})
    assert problem_of(resp, 403)["reason"] == "action_mismatch"
    resp = as_user["frank"].post("/v1/grants/redeem", json={"token": token, "action": approved})
    assert resp.status_code == 200 and resp.json()["status"] == "executed"
    resp = as_user["frank"].post("/v1/grants/redeem", json={"token": token, "action": approved})
    assert problem_of(resp, 403)["reason"] == "used_up"
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    resp = as_user["frank"].post("/v1/grants/redeem", json={"token": forged, "action": approved})
    assert problem_of(resp, 403)["reason"] in ("invalid_signature", "malformed")
    timeline = as_user["frank"].get(f"/v1/requests/{r['id']}").json()["timeline"]
    after_approval = [
        (e["type"], e["payload"].get("reason"))
        for e in timeline
        if e["type"] in ("grant.refused", "grant.redeemed", "request.executed")
    ]
    # every attempt is evidence; the forged token names no request it could be filed under
    assert after_approval == [
        ("grant.refused", "action_mismatch"),
        ("grant.redeemed", None),
        ("request.executed", None),
        ("grant.refused", "used_up"),
    ]


def test_revoked_grant_is_refused(as_user) -> None:
    r = submit(as_user["frank"], {"type": "http.call", "target": "svc/x"})
    token, gid = r["grant"]["token"], r["grant"]["id"]
    problem_of(as_user["bob"].post(f"/v1/grants/{gid}/revoke"), 403)
    revoked = as_user["alice"].post(f"/v1/grants/{gid}/revoke", json={"comment": "leak"}).json()
    assert revoked["status"] == "revoked"
    action = {"type": "http.call", "target": "svc/x", "params": {}}
    resp = as_user["frank"].post("/v1/grants/redeem", json={"token": token, "action": action})
    assert problem_of(resp, 403)["reason"] == "revoked"


def test_two_hundred_concurrent_redeems_yield_one_success(server, as_user) -> None:
    r = submit(
        as_user["frank"], {"type": "sql.execute", "target": "pg/x", "params": {"sql": "select 1"}}
    )
    body = {
        "token": r["grant"]["token"],
        "action": {"type": "sql.execute", "target": "pg/x", "params": {"sql": "select 1"}},
    }
    headers = {"Authorization": f"Bearer {server.tokens['frank']}"}

    async def storm() -> list[int]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(
            base_url=server.url, headers=headers, timeout=120, limits=limits
        ) as c:
            results = await asyncio.gather(
                *(c.post("/v1/grants/redeem", json=body) for _ in range(200))
            )
        return [resp.status_code for resp in results]

    codes = asyncio.run(storm())
    assert codes.count(200) == 1  # the version compare-and-set alone would ensure this
    # ... but every loser is told 'used up' (403), not 'try again' (409): it waited on the
    # row lock and decided on fresh state (fails without FOR UPDATE on PostgreSQL)
    assert codes.count(403) == 199
    with server.app.engine.connect() as conn:
        redeemed = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.audit_events)
            .where(t.audit_events.c.type == "grant.redeemed")
        ).scalar()
    assert redeemed == 1


def test_listing_awaiting_me_and_cursor_pagination(as_user) -> None:
    ids = [write_request(as_user["frank"], row)["id"] for row in range(5)]
    submit(as_user["frank"], {"type": "sql.drop", "target": "pg/prod"})
    as_user["bob"].post(f"/v1/requests/{ids[0]}/votes", json={"decision": "approve"})
    inbox = as_user["bob"].get("/v1/requests", params={"awaiting": "me"}).json()
    assert sorted(r["id"] for r in inbox["items"]) == sorted(ids[1:])
    assert as_user["dave"].get("/v1/requests", params={"awaiting": "me"}).json()["items"] == []
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "status": "pending", **({"cursor": cursor} if cursor else {})}
        page = as_user["alice"].get("/v1/requests", params=params).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    problem_of(as_user["alice"].get("/v1/requests", params={"status": "bogus"}), 422)
    problem_of(as_user["alice"].get("/v1/requests", params={"cursor": "%%%"}), 422)


def test_policy_dry_run_explains(as_user) -> None:
    body = {"action": {"type": "secret.read", "target": "vault/x"}, "as": "bob"}
    resp = as_user["frank"].post("/v1/policies/evaluate", json=body)
    problem_of(resp, 403)
    result = as_user["alice"].post("/v1/policies/evaluate", json=body).json()
    assert result["policy"] == "staged-secret" and result["as"] == "bob"
    assert [s["clause"] for s in result["skipped"]] == ["type", "type", "type"]


def test_audit_endpoints_and_tamper_detection(server, as_user) -> None:
    r = write_request(as_user["frank"])
    as_user["bob"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"})
    problem_of(as_user["frank"].get("/v1/audit/verify"), 403)
    assert as_user["alice"].get("/v1/audit/verify").json()["ok"] is True
    page = as_user["alice"].get("/v1/audit", params={"after": 0}).json()
    vote = next(e for e in page["items"] if e["type"] == "vote.cast")
    with server.app.engine.begin() as conn:
        conn.execute(
            t.audit_events.update()
            .where(t.audit_events.c.seq == vote["seq"])
            .values(payload='{"comment":"","decision":"deny","stage":0}')
        )
    report = as_user["alice"].get("/v1/audit/verify").json()
    assert report["ok"] is False and report["broken_at"] == vote["seq"]


def test_jwks_metrics_health_and_openapi(as_user) -> None:
    anon = as_user["anonymous"]
    keys = anon.get("/.well-known/jwks.json").json()["keys"]
    assert keys[0]["kty"] == "OKP" and keys[0]["crv"] == "Ed25519" and keys[0]["alg"] == "EdDSA"
    assert anon.get("/healthz").json() == {"status": "ok"}
    ready = anon.get("/readyz").json()
    assert ready["ready"] is True and ready["database"] is True
    submit(as_user["frank"], {"type": "sql.drop", "target": "pg/prod"})
    metrics = anon.get("/metrics").text
    assert 'signoff_requests_total{outcome="denied",policy="forbidden-drop"} 1.0' in metrics
    assert "signoff_decision_latency_seconds_bucket" in metrics
    spec = anon.get("/openapi.json").json()
    assert "/v1/requests/{request_id}/votes" in spec["paths"]
    # the API token is a security scheme (the docs page's "Authorize"), not a parameter
    assert spec["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    ask = spec["paths"]["/v1/requests"]["post"]
    assert ask["security"] == [{"apiToken": []}] and "parameters" not in ask
    assert anon.get("/docs").status_code == 200  # rendered in tests/e2e/test_docs.py
    assert anon.get("/redoc").status_code == 404  # ReDoc loads its logo from a CDN


def test_authentication_is_required(as_user) -> None:
    anon = as_user["anonymous"]
    problem_of(anon.get("/v1/requests"), 401)
    bad = httpx.Client(base_url=str(anon.base_url), headers={"Authorization": "Bearer nope"})
    problem_of(bad.get("/v1/requests"), 401)
    bad.close()
    for header in ("Basic Zm9vOmJhcg==", "Bearer", "bearer", "Token abc"):
        odd = httpx.Client(base_url=str(anon.base_url), headers={"Authorization": header})
        problem = problem_of(odd.get("/v1/requests"), 401)
        assert problem["detail"] == "send 'Authorization: Bearer <token>'", header
        odd.close()


def test_bad_input_never_yields_a_500(as_user) -> None:
    c = as_user["frank"]
    problem_of(
        c.post("/v1/requests", content=b"{not json", headers={"content-type": "application/json"}),
        422,
    )
    body = problem_of(
        c.post(
            "/v1/requests", content=b"\xff\xfe\xfa", headers={"content-type": "application/json"}
        ),
        400,
    )
    assert "UTF-8 JSON" in body["detail"]
    body = problem_of(c.post("/v1/requests", json={"action": WRITE, "extra": 1}), 422)
    assert body["errors"][0]["field"] == "body.extra"
    body = problem_of(c.post("/v1/requests", json={"action": {"type": "", "target": "x"}}), 422)
    assert body["errors"][0]["field"] == "body.action.type"
    huge = {"action": {**WRITE, "params": {"sql": "x" * 10_000_000}}, "reason": "r"}
    problem_of(c.post("/v1/requests", json=huge), 413)
    problem_of(c.post("/v1/requests/nope/votes", json={"decision": "maybe"}), 422)
    problem_of(c.post("/v1/requests/nope/votes", json={"decision": "approve"}), 422)  # short
    problem_of(c.post("/v1/requests/nope-nope/votes", json={"decision": "approve"}), 404)
    problem_of(c.get("/v1/requests/nope-nope"), 404)
    problem_of(c.post("/v1/grants/redeem", json={"token": "abc", "action": WRITE}), 403)
    problem_of(c.get("/v1/requests/nope-nope/events", headers={"Last-Event-ID": "x"}), 404)
    problem_of(c.get("/v1/nothing-here"), 404)


def test_readyz_and_metrics_report_the_due_queue(server, as_user) -> None:
    import time

    from signoff.services.scheduler import sweep

    as_user["frank"].post("/v1/requests", json={"action": {"type": "quick.flag", "target": "x"}})
    deadline = time.monotonic() + 10  # the policy's one-second deadline passes...
    ready = as_user["anonymous"].get("/readyz").json()
    while ready["due"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
        ready = as_user["anonymous"].get("/readyz").json()
    # ...and as no worker runs here, it stays due
    assert ready["due"] == 1 and ready["worker_lag_seconds"] > 0
    assert "signoff_due_requests 1.0" in as_user["anonymous"].get("/metrics").text
    assert sweep(server.app.services) == 1
    ready = as_user["anonymous"].get("/readyz").json()
    assert ready["due"] == 0 and ready["worker_lag_seconds"] == 0
    metrics = as_user["anonymous"].get("/metrics").text
    assert 'signoff_scheduled_events_total{event="request.denied"} 1.0' in metrics


def test_identical_pending_requests_fold_into_one(server, as_user) -> None:
    first = write_request(as_user["frank"])
    resp = as_user["frank"].post(
        "/v1/requests", json={"action": first["action"], "reason": "again", "ticket": "OPS-42"}
    )
    assert resp.status_code == 200
    again = resp.json()
    assert again["id"] == first["id"] and again["fold_count"] == 1
    other = write_request(as_user["frank"], row=2)  # another action: a request of its own
    assert other["id"] != first["id"]
    someone_else = write_request(as_user["dave"])  # another requester: their own too
    assert someone_else["id"] != first["id"]
    with server.app.engine.connect() as conn:
        asked = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.outbox)
            .where(t.outbox.c.request_id == first["id"])
        ).scalar()
    assert asked == 1  # approvers were asked once, not twice
    timeline = as_user["frank"].get(f"/v1/requests/{first['id']}").json()["timeline"]
    assert [e["type"] for e in timeline] == ["request.submitted", "request.folded"]
    as_user["bob"].post(f"/v1/requests/{first['id']}/votes", json={"decision": "deny"})
    fresh = write_request(as_user["frank"])  # decided: the same ask is a new request
    assert fresh["id"] != first["id"] and fresh["fold_count"] == 0


def test_only_those_involved_see_a_request(as_user) -> None:
    """The requester, its approvers and admins see it; anyone else is told it does not
    exist, on every read (one request, its event stream, its executions, lists)."""
    r = write_request(as_user["dave"], row=77)  # dba (bob, carol) are asked
    path = f"/v1/requests/{r['id']}"
    for who in ("dave", "bob", "carol", "alice"):
        assert as_user[who].get(path).status_code == 200, who
    for read in (path, f"{path}/events", f"{path}/executions"):
        problem_of(as_user["frank"].get(read), 404)
    problem_of(as_user["erin"].get(path), 404)

    def listed(who: str, **query: str) -> set[str]:
        resp = as_user[who].get("/v1/requests", params={"limit": 200, **query})
        assert resp.status_code == 200, resp.text
        return {item["id"] for item in resp.json()["items"]}

    assert r["id"] in listed("dave") and r["id"] in listed("bob") and r["id"] in listed("alice")
    assert r["id"] not in listed("frank") and r["id"] not in listed("frank", requester="dave")
    # a vote by someone who may not see it is refused as well (not an approver)
    resp = as_user["frank"].post(f"{path}/votes", json={"decision": "approve"})
    assert resp.status_code in (403, 404)


def test_a_policy_lets_more_people_see_its_requests(as_user) -> None:
    """visible_to: erin (security) follows production deploys without voting on them."""
    r = submit(as_user["frank"], {"type": "deploy", "target": "prod/web"})
    assert as_user["erin"].get(f"/v1/requests/{r['id']}").status_code == 200
    listed = as_user["erin"].get("/v1/requests").json()["items"]
    assert r["id"] in [item["id"] for item in listed]
    assert r["id"] not in [
        i["id"] for i in as_user["erin"].get("/v1/requests?awaiting=me").json()["items"]
    ]
    resp = as_user["erin"].post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"})
    assert resp.status_code == 403  # seeing is not voting


def test_an_unambiguous_id_prefix_names_a_request(as_user) -> None:
    """Like git: 8 or more characters of an id work wherever an id is accepted."""
    r = write_request(as_user["dave"], row=88)
    rid = r["id"]
    assert as_user["bob"].get(f"/v1/requests/{rid[:8]}").json()["id"] == rid
    voted = as_user["bob"].post(
        f"/v1/requests/{rid[:12].upper()}/votes", json={"decision": "approve"}
    )
    assert voted.status_code == 200 and voted.json()["id"] == rid
    short = problem_of(as_user["bob"].get(f"/v1/requests/{rid[:7]}"), 422)
    assert "at least 8 characters" in short["detail"]
    problem_of(as_user["frank"].get(f"/v1/requests/{rid[:8]}"), 404)  # not theirs to see
    problem_of(as_user["bob"].get("/v1/requests/ffffffff-no"), 404)


def test_an_ambiguous_prefix_lists_the_candidates(signoff_app) -> None:
    import dataclasses

    import pytest

    from signoff.domain.actions import Action
    from signoff.domain.errors import InvalidInput
    from signoff.services import requests as use_cases
    from signoff.services import views

    ids = iter(["abcdef12-3000-4000-8000-00000000000a", "abcdef12-3000-4000-8000-00000000000b"])
    svc = dataclasses.replace(signoff_app.services, new_id=lambda: next(ids))
    dave = svc.directory.user("dave")
    for n in (1, 2):
        action = Action("sql.execute", "pg/prod", {"sql": f"UPDATE t SET x = {n}"})
        use_cases.submit_request(svc, dave, action, "r", "OPS-1", {})
    with pytest.raises(InvalidInput) as info:
        views.resolve_id(svc, dave, "abcdef12-3000")
    assert "names 2 requests: abcdef12-3000-4000-8000-00000000000a, " in info.value.detail
    assert views.resolve_id(svc, dave, "abcdef12-3000-4000-8000-00000000000b")[-1] == "b"
    assert views.resolve_id(svc, dave, "ABCDEF12-3000-4000-8000-00000000000A")[-1] == "a"
