"""`POST /v1/requests` with `redeem: true`: an action a policy allows at once is asked
for and its grant's use spent in one call (what the MCP proxy does before forwarding);
anything else is submitted as usual and no use is taken."""

from __future__ import annotations

import httpx

READ = {"type": "sql.execute", "target": "pg/prod", "params": {"sql": "SELECT 1"}}
HTTP = {"type": "http.call", "target": "api/billing", "params": {"path": "/ping"}}
WRITE = {"type": "sql.execute", "target": "pg/prod", "params": {"sql": "UPDATE t SET a = 1"}}


def events(client: httpx.Client, request_id: str) -> list[str]:
    return [e["type"] for e in client.get(f"/v1/requests/{request_id}").json()["timeline"]]


def test_an_allowed_action_is_granted_and_its_use_spent_in_one_call(
    as_user: dict[str, httpx.Client],
) -> None:
    dave = as_user["dave"]
    resp = dave.post("/v1/requests", json={"action": READ, "redeem": True})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["redeemed"] is True
    assert body["status"] == "executed"  # its one use is gone
    assert body["grant"]["uses_left"] == 0 and body["grant"]["token"] is None
    assert events(dave, body["id"]) == [
        "request.submitted",
        "request.approved",
        "grant.issued",
        "grant.redeemed",
        "request.executed",
    ]
    # without the flag, nothing is spent and the answer does not say `redeemed`
    plain = dave.post("/v1/requests", json={"action": {**READ, "params": {"sql": "SELECT 2"}}})
    assert plain.json()["status"] == "approved" and plain.json()["redeemed"] is None


def test_a_grant_of_several_uses_keeps_the_rest(as_user: dict[str, httpx.Client]) -> None:
    body = as_user["dave"].post("/v1/requests", json={"action": HTTP, "redeem": True}).json()
    assert body["redeemed"] is True and body["status"] == "approved"
    assert body["grant"]["uses_left"] == 2 and body["grant"]["token"]


def test_a_reviewed_or_denied_action_takes_no_use(as_user: dict[str, httpx.Client]) -> None:
    dave = as_user["dave"]
    asked = dave.post(
        "/v1/requests",
        json={"action": WRITE, "redeem": True, "reason": "fix", "ticket": "OPS-1"},
    ).json()
    assert asked["status"] == "pending" and asked["redeemed"] is False
    again = dave.post(
        "/v1/requests",
        json={"action": WRITE, "redeem": True, "reason": "fix", "ticket": "OPS-1"},
    )
    assert again.status_code == 200 and again.json()["redeemed"] is False  # folded
    drop = {"type": "sql.drop", "target": "pg/prod", "params": {}}
    denied = dave.post("/v1/requests", json={"action": drop, "redeem": True}).json()
    assert denied["status"] == "denied" and denied["redeemed"] is False
    assert "grant.redeemed" not in events(dave, denied["id"])
