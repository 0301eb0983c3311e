"""No request rots: reminders, escalation, timeouts, request TTL and grant expiry fire
from durable deadlines, with a controlled clock, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from signoff.adapters.db import tables as t
from signoff.bootstrap import build
from signoff.domain.actions import Action
from signoff.domain.errors import GrantRefused, NotEligible
from signoff.domain.requests import Decision, Status
from signoff.services import requests as use_cases
from signoff.services.ports import FixedClock
from signoff.services.scheduler import fire_due, sweep
from signoff.services.views import verify_audit
from tests.conftest import reload

from ..conftest import make_settings

CHANGE = Action("config.change", "app/prod", {"key": "max_conns", "value": "200"})
T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


@pytest.fixture
def clocked(database_url: str, tmp_path: Path):
    clock = FixedClock(T0)
    app = build(make_settings(database_url, tmp_path, max_pending="2h"), clock=clock)
    yield app, clock
    app.close()


def events_of(app, rid: str) -> list[str]:
    with app.services.uow(write=False) as uow:
        return [e.type for e in uow.audit.events(request_id=rid)]


def outbox_of(app, rid: str) -> list[dict]:
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.outbox.c.payload)
            .where(t.outbox.c.request_id == rid)
            .order_by(t.outbox.c.id)
        )
        return [r[0] for r in rows]


def test_reminders_escalation_then_timeout(clocked) -> None:
    app, clock = clocked
    svc = app.services
    r = use_cases.submit_request(svc, svc.directory.user("frank"), CHANGE, "", None, {})
    assert sweep(svc) == 0  # nothing due yet
    clock.advance(minutes=10)
    assert sweep(svc) == 1
    clock.advance(minutes=10)
    assert sweep(svc) == 1
    assert sweep(svc) == 0  # idempotent: the same moment fires nothing again
    reminders = [p for p in outbox_of(app, r.id) if p["event"] == "request.reminded"]
    assert [p["to"] for p in reminders] == [["bob", "carol"], ["bob", "carol"]]

    # dave (sre) cannot vote before the escalation
    with pytest.raises(NotEligible):
        use_cases.cast_vote(svc, svc.directory.user("dave"), r.id, Decision.APPROVE, "")
    clock.advance(minutes=10)  # 30m: the stage deadline passes
    assert sweep(svc) == 1
    current = reload(svc, r.id)
    assert current.status is Status.PENDING and current.escalation_level == 1
    assert current.awaiting() == {"alice", "bob", "carol", "dave"}
    escalated = [p for p in outbox_of(app, r.id) if p["event"] == "stage.escalated"]
    assert escalated[0]["to"] == ["alice", "dave"]
    with svc.uow(write=False) as uow:
        page = uow.requests.list(
            status=None, requester=None, awaiting="dave", cursor=None, limit=10
        )
    assert [x.id for x in page.items] == [r.id]

    clock.advance(minutes=15)  # the escalation's own deadline
    assert sweep(svc) == 1
    final = reload(svc, r.id)
    assert final.status is Status.TIMED_OUT
    assert events_of(app, r.id) == [
        "request.submitted",
        "request.reminded",
        "request.reminded",
        "stage.escalated",
        "request.timed_out",
    ]
    last = outbox_of(app, r.id)[-1]
    assert (last["event"], last["status"], last["actor"], last["to"]) == (
        "request.timed_out",
        "timed_out",
        "scheduler",
        ["frank"],
    )
    assert verify_audit(svc).ok


def test_an_escalated_approver_can_decide(clocked) -> None:
    app, clock = clocked
    svc = app.services
    r = use_cases.submit_request(svc, svc.directory.user("frank"), CHANGE, "", None, {})
    clock.advance(minutes=31)
    sweep(svc)
    decided = use_cases.cast_vote(svc, svc.directory.user("dave"), r.id, Decision.APPROVE, "ok")
    assert decided.status is Status.APPROVED


def test_on_timeout_deny(clocked) -> None:
    app, clock = clocked
    svc = app.services
    r = use_cases.submit_request(
        svc, svc.directory.user("frank"), Action("feature.flag", "web", {}), "", None, {}
    )
    clock.advance(minutes=4, seconds=59)
    assert sweep(svc) == 0
    clock.advance(seconds=1)
    assert sweep(svc) == 1
    assert reload(svc, r.id).status is Status.DENIED


def test_request_ttl_bounds_policies_without_timeouts(clocked) -> None:
    app, clock = clocked
    svc = app.services
    # staged-secret has no stage timeout: only the server-wide maximum (2h here) applies
    r = use_cases.submit_request(
        svc, svc.directory.user("frank"), Action("secret.read", "vault/x", {}), "", None, {}
    )
    assert reload(svc, r.id).next_due_at == T0 + timedelta(hours=2)
    clock.advance(hours=2)
    assert sweep(svc) == 1
    assert reload(svc, r.id).status is Status.TIMED_OUT


def test_unused_grant_expires_and_redemption_is_refused(clocked) -> None:
    app, clock = clocked
    svc = app.services
    frank = svc.directory.user("frank")
    http = Action("http.call", "svc/deploy", {"ref": "v1"})
    r = use_cases.submit_request(svc, frank, http, "", None, {})
    token = svc.signer.issue(r)
    clock.advance(hours=1)
    assert sweep(svc) == 1
    assert reload(svc, r.id).status is Status.EXPIRED
    assert events_of(app, r.id)[-1] == "request.expired"
    with pytest.raises(GrantRefused) as info:
        use_cases.redeem_grant(svc, frank, token, http)
    assert info.value.reason == "expired"


def test_a_sweep_claims_due_requests_in_batches_until_none_is_left(clocked) -> None:
    app, clock = clocked
    svc = app.services
    frank = svc.directory.user("frank")
    ids = [
        use_cases.submit_request(svc, frank, Action("feature.flag", f"web{i}", {}), "", None, {}).id
        for i in range(7)
    ]
    clock.advance(minutes=5)
    first = fire_due(svc, limit=3)
    assert (first.claimed, first.fired) == (3, 3)
    assert sweep(svc, limit=3) == 4
    assert {reload(svc, i).status for i in ids} == {Status.DENIED}
    assert fire_due(svc, limit=3).claimed == 0


def test_a_vote_and_a_deadline_do_not_both_win(clocked) -> None:
    app, clock = clocked
    svc = app.services
    r = use_cases.submit_request(
        svc, svc.directory.user("frank"), Action("feature.flag", "web", {}), "", None, {}
    )
    use_cases.cast_vote(svc, svc.directory.user("erin"), r.id, Decision.APPROVE, "")
    clock.advance(minutes=10)
    # approved: the stage deadline no longer applies; the grant's expiry warning is due
    # first (a 15-minute grant: three minutes before it lapses)
    assert reload(svc, r.id).next_due_at == T0 + timedelta(minutes=12)
    assert sweep(svc) == 0
    assert reload(svc, r.id).status is Status.APPROVED


def test_the_requester_is_told_before_an_unused_grant_lapses(clocked) -> None:
    app, clock = clocked
    svc = app.services
    frank = svc.directory.user("frank")
    r = use_cases.submit_request(svc, frank, Action("http.call", "svc/x", {}), "", None, {})
    clock.advance(minutes=54)
    assert sweep(svc) == 0
    clock.advance(minutes=1)  # five minutes before a one-hour grant lapses
    assert sweep(svc) == 1
    assert sweep(svc) == 0
    warned = outbox_of(app, r.id)[-1]
    assert (warned["event"], warned["to"]) == ("grant.expiring", ["frank"])
    assert reload(svc, r.id).status is Status.APPROVED
    clock.advance(minutes=5)
    assert sweep(svc) == 1
    assert events_of(app, r.id)[-2:] == ["grant.expiring", "request.expired"]
