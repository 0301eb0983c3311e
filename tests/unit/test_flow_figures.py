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
