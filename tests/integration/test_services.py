"""Use cases with a controlled clock, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from signoff.adapters.db import tables as t
from signoff.domain.actions import Action
from signoff.domain.errors import Conflict, GrantRefused, InvalidTransition
from signoff.domain.requests import Decision, Status
from signoff.services import requests as use_cases
from signoff.services import views
from signoff.services.ports import FixedClock
from signoff.services.views import verify_audit
from tests.conftest import reload

from ..conftest import fixed_app

HTTP = Action("http.call", "svc/deploy", {"path": "/deploy", "ref": "v1.2.3"})


@pytest.fixture
def clocked(database_url: str, tmp_path: Path):
    clock = FixedClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    app = fixed_app(database_url, tmp_path, clock)
    yield app, clock
    app.close()


def test_multi_use_grant_until_used_up_then_executed(clocked) -> None:
    app, _ = clocked
    svc = app.services
    frank = svc.directory.user("frank")
    r = use_cases.submit_request(svc, frank, HTTP, "", None, {})
    assert r.status is Status.APPROVED and r.grant is not None and r.grant.uses_total == 3
    token = svc.signer.issue(r)
    left = [use_cases.redeem_grant(svc, frank, token, HTTP).uses_left for _ in range(3)]
    assert left == [2, 1, 0]
    assert reload(svc, r.id).status is Status.EXECUTED
    with pytest.raises(GrantRefused) as info:
        use_cases.redeem_grant(svc, frank, token, HTTP)
    assert info.value.reason == "used_up"


def test_grant_lapses_at_its_ttl(clocked) -> None:
    app, clock = clocked
    svc = app.services
    frank = svc.directory.user("frank")
    r = use_cases.submit_request(svc, frank, HTTP, "", None, {})
    token = svc.signer.issue(r)
    clock.advance(minutes=59)
    assert use_cases.redeem_grant(svc, frank, token, HTTP).uses_left == 2
    clock.advance(minutes=2)
    with pytest.raises(GrantRefused) as info:
        use_cases.redeem_grant(svc, frank, token, HTTP)
    assert info.value.reason == "expired"


def test_the_stage_deadline_is_what_the_scheduler_waits_for(clocked) -> None:
    app, clock = clocked
    svc = app.services
    r = use_cases.submit_request(
        svc,
        svc.directory.user("frank"),
        Action("sql.execute", "pg/prod", {"sql": "DELETE FROM t WHERE id = 1"}),
        "cleanup",
        "OPS-7",
        {},
    )
    stored = reload(svc, r.id)
    assert stored.deadline_at == datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    with app.engine.connect() as conn:  # the stored, indexed due time the sweep reads
        due = conn.execute(
            sa.select(t.requests.c.next_due_at).where(t.requests.c.id == r.id)
        ).scalar_one()
    assert due == stored.deadline_at
    clock.advance(minutes=5)
    use_cases.cast_vote(svc, svc.directory.user("bob"), r.id, Decision.DENY, "no")
    decided = reload(svc, r.id)
    assert decided.deadline_at is None and decided.next_due_at is None
    with pytest.raises(InvalidTransition):
        use_cases.cancel_request(svc, svc.directory.user("frank"), r.id, "")


def test_every_step_is_in_one_verified_chain(clocked) -> None:
    app, _ = clocked
    svc = app.services
    frank = svc.directory.user("frank")
    for _ in range(3):
        r = use_cases.submit_request(svc, frank, Action("deploy", "prod/web", {}), "", None, {})
        use_cases.cast_vote(svc, svc.directory.user("carol"), r.id, Decision.APPROVE, "")
        use_cases.cast_vote(svc, svc.directory.user("bob"), r.id, Decision.APPROVE, "")
    report = verify_audit(svc)
    # per request: submitted, two votes, approved, grant issued
    assert report.ok and report.checked == 15


def test_a_use_saved_from_stale_state_is_refused_not_counted_twice(clocked) -> None:
    """The version compare-and-set: a caller that read the grant, then lost the race to
    another caller who used it (simulated by changing the stored row after the read, as
    a concurrent commit would), cannot save its own use of the same grant. (Fails if
    ``save`` stops checking the version.)"""
    app, clock = clocked
    svc = app.services
    frank = svc.directory.user("frank")
    action = Action("sql.execute", "pg/x", {"sql": "select 1"})  # allowed, one use
    r = use_cases.submit_request(svc, frank, action, "", None, {})
    with svc.uow() as uow:
        stale = uow.requests.get(r.id)  # no row lock
        version = stale.version
        assert stale.redeem(action.digest, "frank", clock.now())  # the domain says yes
        # meanwhile another caller's use commits: the stored version moves on
        uow.conn.execute(  # type: ignore[attr-defined]
            t.requests.update().where(t.requests.c.id == r.id).values(version=version + 1)
        )
        with pytest.raises(Conflict):
            uow.requests.save(stale, version)
    stored = reload(svc, r.id)
    assert stored.status is Status.APPROVED and stored.grant is not None
    assert stored.grant.uses_left == 1  # the refused save took nothing


def test_only_the_requester_executors_and_the_targets_enforcement_points_redeem(
    clocked,
) -> None:
    """bob got hold of frank's token: refused, and the attempt is audited; erin, the
    enforcement point the policy names (grant.redeemers), may redeem it."""
    app, _ = clocked
    svc = app.services
    frank, bob, erin, alice = (svc.directory.user(u) for u in ("frank", "bob", "erin", "alice"))
    r = use_cases.submit_request(svc, frank, HTTP, "", None, {})
    token = svc.signer.issue(r)
    for outsider in (bob, alice):  # admins do not redeem others' grants either
        with pytest.raises(GrantRefused) as info:
            use_cases.redeem_grant(svc, outsider, token, HTTP)
        assert info.value.reason == "not_allowed"
    assert use_cases.redeem_grant(svc, erin, token, HTTP).uses_left == 2
    assert use_cases.redeem_grant(svc, frank, token, HTTP).uses_left == 1
    with app.engine.connect() as conn:
        refusals = conn.execute(
            sa.select(t.audit_events.c.actor).where(t.audit_events.c.type == "grant.refused")
        ).scalars()
        assert sorted(refusals) == ["alice", "bob"]


def test_audit_verify_finds_state_edited_behind_the_logs_back(clocked) -> None:
    """The chain stays intact when someone edits the tables directly; replaying each
    request's history against its stored state finds them: a denied request turned
    approved, a grant given more uses, a vote removed."""
    app, _ = clocked
    svc = app.services
    frank, dave, bob, carol = (svc.directory.user(u) for u in ("frank", "dave", "bob", "carol"))
    used = use_cases.submit_request(svc, frank, HTTP, "", None, {})
    use_cases.redeem_grant(svc, frank, svc.signer.issue(used), HTTP)
    denied = use_cases.submit_request(svc, frank, Action("sql.drop", "pg/prod", {}), "", None, {})
    voted = use_cases.submit_request(
        svc, dave, Action("sql.execute", "pg/prod", {"sql": "UPDATE t SET a = 1"}), "r", "OPS-1", {}
    )
    use_cases.cast_vote(svc, bob, voted.id, Decision.APPROVE, "")
    use_cases.cast_vote(svc, carol, voted.id, Decision.APPROVE, "")
    report = views.full_audit(svc)
    assert report.ok and report.state.checked == 3
    with app.engine.begin() as conn:
        conn.execute(
            t.requests.update().where(t.requests.c.id == denied.id).values(status="approved")
        )
        conn.execute(t.grants.update().where(t.grants.c.request_id == used.id).values(uses_left=3))
        conn.execute(t.votes.delete().where(t.votes.c.voter == "carol"))
    report = views.full_audit(svc)
    assert report.chain.ok and not report.ok
    text = "\n".join(report.state.mismatches)
    assert f"request {denied.id} is stored as 'approved' but its history says 'denied'" in text
    assert f"request {used.id}'s grant has 3 of 3 uses stored but 2 of 3" in text
    assert f"request {voted.id} has votes [('bob', 'approve', 0)] stored" in text
    assert len(report.state.mismatches) == 3
