"""The flow report over a generated history with a controlled clock, on both databases:
every figure and every finding is known in advance, from how the history was made."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.bootstrap import App
from signoff.domain.actions import Action
from signoff.domain.requests import Decision, Status
from signoff.services import analytics
from signoff.services import requests as use_cases
from signoff.services.ports import FixedClock
from signoff.services.scheduler import sweep
from tests.conftest import LiveServer, reload

from ..conftest import fixed_app

DAY = datetime(2026, 11, 2, tzinfo=UTC)
T0 = DAY + timedelta(hours=8)


def make_history(app: App, clock: FixedClock) -> dict[str, Any]:
    """The history the expected figures below come from (times from each request's
    creation):

    - escalating-change x25 (frank): bob looks at 60 s, approves on Slack at 62 s.
    - prod-sql-write x14: 6 where carol looks at 100 s, bob at 200 s, bob approves on the
      web at 300 s and carol by the API at 400 s; 4 where carol looks from a mail link at
      100 s and denies from it at 160 s; 4 nobody answers, timed out by one sweep.
    - read-only-sql x5 allowed, sql.drop x3 denied by policy (frank).
    - dave asks the same deploy 12 times: one pending request, 11 folds.
    - frank asks for a secret and cancels it.
    """
    svc = app.services
    d = svc.directory
    frank, bob, carol, dave = d.user("frank"), d.user("bob"), d.user("carol"), d.user("dave")
    ids: dict[str, list[str]] = {}

    def step(when: datetime) -> None:
        clock.current = when

    for i in range(25):
        start = T0 + timedelta(minutes=10 * i)
        step(start)
        r = use_cases.submit_request(
            svc, frank, Action("config.change", "app/cfg", {"key": f"k{i}"}), "", None, {}
        )
        app.dispatch()
        step(start + timedelta(seconds=60))
        use_cases.looked(svc, bob, reload(svc, r.id), channel="web")
        step(start + timedelta(seconds=62))
        use_cases.cast_vote(svc, bob, r.id, Decision.APPROVE, "", channel="slack")
        ids.setdefault("a", []).append(r.id)

    t1 = T0 + timedelta(hours=5)
    for i in range(14):
        start = t1 + timedelta(minutes=10 * i)
        step(start)
        sql = f"UPDATE t SET a = {i} WHERE id = {i}"
        r = use_cases.submit_request(
            svc, frank, Action("sql.execute", "pg/prod", {"sql": sql}), "fix", "OPS-1", {}
        )
        app.dispatch()
        ids.setdefault("b", []).append(r.id)
        if i < 6:
            step(start + timedelta(seconds=100))
            use_cases.looked(svc, carol, reload(svc, r.id), channel="web")
            step(start + timedelta(seconds=200))
            use_cases.looked(svc, bob, reload(svc, r.id), channel="web")
            step(start + timedelta(seconds=300))
            use_cases.cast_vote(svc, bob, r.id, Decision.APPROVE, "", channel="web")
            step(start + timedelta(seconds=400))
            use_cases.cast_vote(svc, carol, r.id, Decision.APPROVE, "", channel="api")
        elif i < 10:
            step(start + timedelta(seconds=100))
            use_cases.looked(svc, carol, reload(svc, r.id), channel="email")
            step(start + timedelta(seconds=160))
            use_cases.cast_vote(svc, carol, r.id, Decision.DENY, "no", channel="email")
    step(t1 + timedelta(minutes=130 + 30))  # the last four's deadlines have all passed
    sweep(svc)
    assert [reload(svc, rid).status for rid in ids["b"][10:]] == [Status.TIMED_OUT] * 4

    t2 = T0 + timedelta(hours=8)
    for i in range(5):
        step(t2 + timedelta(minutes=i))
        r = use_cases.submit_request(
            svc, frank, Action("sql.execute", "pg/app", {"sql": "SELECT 1"}), "", None, {}
        )
        assert r.status is Status.APPROVED
    for i in range(3):
        step(t2 + timedelta(minutes=10 + i))
        r = use_cases.submit_request(
            svc, frank, Action("sql.drop", "pg/app", {"table": f"t{i}"}), "", None, {}
        )
        assert r.status is Status.DENIED
    for i in range(12):
        step(t2 + timedelta(hours=1, seconds=i))
        r, _ = use_cases.submit_or_fold(
            svc, dave, Action("deploy", "prod/api", {"ref": "v1"}), "", None, {}
        )
        app.dispatch()
    ids["deploy"] = [r.id]
    step(t2 + timedelta(hours=2))
    r = use_cases.submit_request(svc, frank, Action("secret.read", "vault/db", {}), "", None, {})
    app.dispatch()
    step(t2 + timedelta(hours=2, minutes=1))
    use_cases.cancel_request(svc, frank, r.id, "not needed")
    step(DAY + timedelta(hours=23))
    return ids


@pytest.fixture
def reported(database_url: str, tmp_path: Path) -> Iterator[tuple[App, FixedClock, Any]]:
    clock = FixedClock(T0)
    app = fixed_app(database_url, tmp_path, clock)
    ids = make_history(app, clock)
    yield app, clock, ids
    app.close()


def _by_name(rows: list[Any]) -> dict[str, Any]:
    return {r.name: r for r in rows}


def test_every_figure_of_a_known_history(reported) -> None:
    app, _, ids = reported
    svc = app.services
    alice = svc.directory.user("alice")
    rep = analytics.report(svc, alice, DAY, DAY + timedelta(days=1))
    assert rep.requests == 25 + 14 + 5 + 3 + 1 + 1
    p = _by_name(rep.policies)
    assert [x.name for x in rep.policies] == [
        "escalating-change",
        "prod-sql-write",
        "read-only-sql",
        "forbidden-drop",
        "deploy-two-groups",
        "staged-secret",
    ]
    ec = p["escalating-change"]
    assert (ec.requests, ec.reviewed, ec.approved, ec.denied, ec.approval_rate) == (
        25,
        25,
        25,
        0,
        1.0,
    )
    assert (ec.decision_p50_s, ec.decision_p90_s) == (62, 62)
    assert (ec.first_look_p50_s, ec.first_look_p90_s) == (60, 60)
    ps = p["prod-sql-write"]
    assert (ps.reviewed, ps.approved, ps.denied, ps.timed_out, ps.escalated) == (14, 6, 4, 4, 0)
    assert ps.approval_rate == 0.6
    # 160 x4, 400 x6, then the four timed out at 1800, 2400, 3000, 3600 s
    assert (ps.decision_p50_s, ps.decision_p90_s) == (400, 3000)
    assert (ps.first_look_p50_s, ps.first_look_p90_s) == (100, 100)
    assert (p["read-only-sql"].allowed, p["read-only-sql"].reviewed) == (5, 0)
    assert p["forbidden-drop"].denied_by_policy == 3
    assert (p["deploy-two-groups"].reviewed, p["deploy-two-groups"].pending) == (1, 1)
    assert (p["staged-secret"].cancelled, p["staged-secret"].reviewed) == (1, 1)

    a = _by_name(rep.approvers)
    bob, carol = a["bob"], a["carol"]
    assert (bob.votes, bob.approvals, bob.denials, bob.approval_rate) == (31, 31, 0, 1.0)
    assert (bob.quick_approvals, bob.timed_approvals, bob.look_to_decision_p50_s) == (25, 31, 2)
    assert (carol.votes, carol.approvals, carol.denials, carol.approval_rate) == (10, 6, 4, 0.6)
    assert (carol.quick_approvals, carol.look_to_decision_p50_s) == (0, 300)
    # asked: 25 changes, 14 writes, the deploy, the secret's first stage
    assert bob.asks == carol.asks == 41
    # told: once per request they were asked about, all on one day
    assert (bob.notifications, bob.busiest_day, bob.days_over_budget) == (41, 41, 1)
    assert bob.notifications_per_day == 41.0

    c = _by_name(rep.channels)
    assert {n: (x.votes, x.approvals, x.denials, x.decision_p50_s) for n, x in c.items()} == {
        "slack": (25, 25, 0, 62),
        "web": (6, 6, 0, 300),
        "api": (6, 6, 0, 400),
        "email": (4, 0, 4, 160),
    }

    assert rep.queue["pending"] == 1
    assert [q["id"] for q in rep.queue["oldest"]] == ids["deploy"]
    assert rep.queue["oldest"][0]["waiting_s"] == 6 * 3600  # asked at 17:00, now 23:00

    assert [(f.kind, f.subject) for f in rep.findings] == [
        ("always_approved", "escalating-change"),
        ("times_out", "prod-sql-write"),
        ("quick_approvals", "bob"),
        ("never_denies", "bob"),
        ("over_notified", "bob"),
        ("over_notified", "carol"),
        ("never_matches", "multi-use-http"),
        ("never_matches", "flag-deny-on-timeout"),
        ("never_matches", "quick-flag"),
        ("never_matches", "batched-report"),
        ("noisy_requester", "dave"),
    ]
    said = {(f.kind, f.subject): f.evidence for f in rep.findings}
    assert said[("quick_approvals", "bob")] == (
        "25 of 31 approvals came within 5 s of their first look (median look to decision 2 s)"
    )
    assert said[("times_out", "prod-sql-write")] == "4 of 14 reviews timed out and 0 escalated"
    assert said[("noisy_requester", "dave")] == ("11 identical asks folded into 1 pending request")


def test_a_policy_filter_and_thresholds(reported) -> None:
    app, _, _ = reported
    svc = app.services
    alice = svc.directory.user("alice")
    rep = analytics.report(svc, alice, DAY, DAY + timedelta(days=1), policy="prod-sql-write")
    assert [p.name for p in rep.policies] == ["prod-sql-write"] and rep.requests == 14
    # what reached each approver about this policy's requests, not about every policy's
    assert {a.name: (a.asks, a.notifications, a.busiest_day) for a in rep.approvers} == {
        "bob": (14, 14, 14),
        "carol": (14, 14, 14),
    }
    strict = analytics.Thresholds(timeout_share=0.5, notify_budget=100, quick_share=0.9)
    rep = analytics.report(svc, alice, DAY, DAY + timedelta(days=1), thresholds=strict)
    kinds = {f.kind for f in rep.findings}
    assert "times_out" not in kinds and "over_notified" not in kinds
    assert "quick_approvals" not in kinds  # 25 of 31 is under 0.9


def test_the_report_over_http_admins_and_approvers(reported) -> None:
    app, _, _ = reported
    server = LiveServer(app).start()
    try:
        q = {"since": "2026-11-02", "until": "2026-11-03"}
        whole = server.client("alice").get("/v1/analytics/report", params=q)
        assert whole.status_code == 200
        body = whole.json()
        assert body["requests"] == 49 and len(body["findings"]) == 11
        assert body["queue"]["oldest"][0]["created_at"].startswith("2026-11-02T17:00:00")
        own = server.client("bob").get("/v1/analytics/report", params=q).json()
        assert [a["name"] for a in own["approvers"]] == ["bob"]
        assert own["policies"] == [] and own["channels"] == [] and own["queue"] == {}
        assert {f["subject"] for f in own["findings"]} == {"bob"}
        bad = server.client("alice").get("/v1/analytics/report", params={"since": "lately"})
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert "since must be a duration" in bad.json()["detail"]
        long = server.client("alice").get("/v1/analytics/report", params={"since": "500d"})
        assert long.status_code == 422 and "400 days" in long.json()["detail"]
        anon = httpx.get(f"{server.url}/v1/analytics/report")
        assert anon.status_code == 401
        metrics = httpx.get(f"{server.url}/metrics").text
        # over the 30 days before now (23:00 on the history's day): the same findings
        assert 'signoff_flow_findings{kind="never_matches"} 4.0' in metrics
        assert 'signoff_flow_findings{kind="over_notified"} 2.0' in metrics
        assert 'signoff_flow_findings{kind="noisy_requester"} 1.0' in metrics
        _the_cli_says_the_same(server, body)
    finally:
        server.stop()


def _cli(server: LiveServer, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIGNOFF_URL": server.url, "SIGNOFF_TOKEN": server.tokens[user]}
    return subprocess.run(
        [sys.executable, "-m", "signoff", "report", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _the_cli_says_the_same(server: LiveServer, body: dict[str, Any]) -> None:
    window = ("--since", "2026-11-02", "--until", "2026-11-03")
    as_json = _cli(server, "alice", *window, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["findings"] == body["findings"]
    table = _cli(server, "alice", *window)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "Approval flow, 2026-11-02 00:00 to 2026-11-03 00:00 UTC: 49 requests"
    # piped: tab-separated rows under a header
    row = next(x for x in lines if x.startswith("prod-sql-write\t"))
    assert row.split("\t") == [
        "prod-sql-write",
        "14",
        "0",
        "0",
        "14",
        "6",
        "4",
        "4",
        "0",
        "0",
        "60%",
        "6m40s",
        "50m",
        "1m40s",
    ]
    assert "Queue: 1 pending now" in lines
    assert (
        "- Quick approvals: bob: 25 of 31 approvals came within 5 s of their first look "
        "(median look to decision 2 s)"
    ) in lines
    as_csv = _cli(server, "alice", *window, "--format", "csv")
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["section", "subject", "figure", "value"]
    assert ["approvers", "carol", "denials", "4"] in rows
    assert ["findings", "dave", "noisy_requester", body["findings"][-1]["evidence"]] in rows
    quiet = _cli(server, "alice", "--since", "2026-10-01", "--until", "2026-10-02")
    assert quiet.stdout.splitlines()[0] == (  # an admin's report, with nothing in it
        "Approval flow, 2026-10-01 00:00 to 2026-10-02 00:00 UTC: 0 requests"
    )
    wrong = _cli(server, "alice", "--since", "lately")
    assert wrong.returncode == 2
    assert wrong.stderr.strip().startswith("error: since must be a duration")
    mine = _cli(server, "carol", *window)
    assert mine.returncode == 0
    assert mine.stdout.splitlines()[0] == (
        "Your figures as an approver, 2026-11-02 00:00 to 2026-11-03 00:00 UTC"
    )
