"""The flow report's figures from rows (services.analytics.compute, pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signoff.services import analytics
from signoff.services.dependencies import Thresholds
from signoff.services.ports import FlowRows, RequestRow

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def rows(n: int, look_before_vote: bool) -> FlowRows:
    """n requests by dave, each approved by bob 10 minutes after asking; bob's look is
    either a page view 2 s before his vote or only the one his vote records."""
    requests, asks, votes, events = [], [], [], []
    for i in range(n):
        rid = f"r{i}"
        asked = T0 + timedelta(hours=i)
        voted = asked + timedelta(minutes=10)
        requests.append(RequestRow(rid, "p", "approved", "dave", asked, voted, False, 0))
        asks.append((rid, "bob"))
        votes.append((rid, "bob", "approve", voted))
        if look_before_vote:
            events.append((rid, "bob", "seen", "web", voted - timedelta(seconds=2)))
        events.append((rid, "bob", "seen", "cli", voted))  # a vote is a look, at the latest
        events.append((rid, "bob", "voted", "cli", voted))
    return FlowRows(requests, asks, votes, events, [])


def report(r: FlowRows) -> analytics.Report:
    until = T0 + timedelta(days=3)
    return analytics.compute(r, T0, until, None, {}, ["p"], Thresholds())


def test_votes_without_a_look_are_not_quick_approvals() -> None:
    rep = report(rows(12, look_before_vote=False))
    (bob,) = [a for a in rep.approvers if a.name == "bob"]
    assert (bob.votes, bob.approvals) == (12, 12)
    assert (bob.quick_approvals, bob.timed_approvals, bob.look_to_decision_p50_s) == (0, 0, None)
    assert "quick_approvals" not in {f.kind for f in rep.findings}


def test_a_look_before_the_vote_is_timed() -> None:
    rep = report(rows(12, look_before_vote=True))
    (bob,) = [a for a in rep.approvers if a.name == "bob"]
    assert (bob.quick_approvals, bob.timed_approvals, bob.look_to_decision_p50_s) == (12, 12, 2)
    assert "quick_approvals" in {f.kind for f in rep.findings}


def test_a_window_given_in_another_zone_is_told_in_utc() -> None:
    now = datetime(2026, 12, 5, 13, 0, tzinfo=UTC)
    since, until = analytics.window(now, "2026-11-01T00:00:00+05:00", "2026-11-02T00:00-08:00")
    assert since.isoformat() == "2026-10-31T19:00:00+00:00"
    assert until.isoformat() == "2026-11-02T08:00:00+00:00"


def generated_history() -> FlowRows:
    """600 requests, 150 for each of four approvers (a0..a3), asked a minute apart. The
    j-th of an approver's requests has policy ("deploy", "write", "read")[j % 3] and its
    outcome by j % 10 (3 and 10 are coprime: each pair occurs 5 times in 150):

    - read: allowed outright (no one asked);
    - 0..7: the approver looks at 60 s and approves at 62 s (0..3: quick) or 120 s
      (4..7), on Slack when j is even, on the web when odd;
    - 8: looks at 60 s, denies at 120 s from a mail link;
    - 9: nobody answers; timed out at 30 minutes.
    Every ask reached its approver the same day."""
    requests, asks, votes, events, notified = [], [], [], [], []
    for k in range(4):
        person = f"a{k}"
        told = 0
        for j in range(150):
            rid = f"r{k}-{j}"
            asked = T0 + timedelta(minutes=k * 150 + j)
            policy, outcome = ("deploy", "write", "read")[j % 3], j % 10
            if policy == "read":
                requests.append(RequestRow(rid, policy, "approved", "dev", asked, asked, False, 0))
                continue
            asks.append((rid, person))
            told += 1
            if outcome == 9:
                decided = asked + timedelta(minutes=30)
                requests.append(
                    RequestRow(rid, policy, "timed_out", "dev", asked, decided, False, 0)
                )
                continue
            late = outcome >= 4
            decided = asked + timedelta(seconds=120 if late else 62)
            approve = outcome < 8
            channel = "email" if not approve else ("slack" if j % 2 == 0 else "web")
            status = "approved" if approve else "denied"
            requests.append(RequestRow(rid, policy, status, "dev", asked, decided, False, 0))
            votes.append((rid, person, "approve" if approve else "deny", decided))
            events.append((rid, person, "seen", channel, asked + timedelta(seconds=60)))
            events.append((rid, person, "voted", channel, decided))
        notified.append((person, T0.date().isoformat(), told))
    return FlowRows(requests, asks, votes, events, notified)


def test_hundreds_of_requests_with_known_votes_timings_and_channels() -> None:
    known = ["deploy", "write", "read", "unused"]
    rep = analytics.compute(
        generated_history(), T0, T0 + timedelta(days=1), None, {}, known, Thresholds()
    )
    assert rep.requests == 600
    p = {x.name: x for x in rep.policies}
    assert (p["read"].requests, p["read"].allowed, p["read"].reviewed) == (200, 200, 0)
    for name in ("deploy", "write"):
        x = p[name]
        assert (x.requests, x.reviewed, x.approved, x.denied, x.timed_out) == (
            200,
            200,
            160,
            20,
            20,
        )
        assert x.approval_rate == round(160 / 180, 4)
        # 80 at 62 s, 100 at 120 s (approvals 4..7 and the denials), 20 at 1800 s
        assert (x.decision_p50_s, x.decision_p90_s) == (120, 120)
        assert (x.first_look_p50_s, x.first_look_p90_s) == (60, 60)
    for a in rep.approvers:
        assert (a.asks, a.votes, a.approvals, a.denials) == (100, 90, 80, 10)
        assert (a.quick_approvals, a.timed_approvals) == (40, 80)
        assert (a.notifications, a.busiest_day, a.days_over_budget) == (100, 100, 1)
        # 40 looks of 2 s and 50 of 60 s
        assert a.look_to_decision_p50_s == 60
    c = {x.name: x for x in rep.channels}
    assert {n: (x.votes, x.approvals, x.denials, x.decision_p50_s) for n, x in c.items()} == {
        "slack": (160, 160, 0, 62),
        "web": (160, 160, 0, 62),
        "email": (40, 0, 40, 120),
    }
    assert sorted((f.kind, f.subject) for f in rep.findings) == sorted(
        [("quick_approvals", f"a{k}") for k in range(4)]
        + [("over_notified", f"a{k}") for k in range(4)]
        + [("never_matches", "unused")]
    )
