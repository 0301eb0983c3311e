"""The request state machine under random sequences of votes, cancels, redemptions,
executions through the gateway, revocations and clock moves (Hypothesis stateful
testing)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from signoff.domain.actions import Action
from signoff.domain.audit import GENESIS_HASH, AuditEvent, chain_next
from signoff.domain.errors import (
    AlreadyVoted,
    Forbidden,
    GrantRefused,
    InvalidTransition,
    NotEligible,
    QuorumUnreachable,
    SelfApproval,
    SignoffError,
)
from signoff.domain.replay import differences, replay
from signoff.domain.requests import TRANSITIONS, Decision, Request, StagePlan, Status

PEOPLE = ["ann", "ben", "cat", "dan", "eve", "req"]
ACTION = Action("sql.execute", "pg/prod", {"sql": "UPDATE t SET x = 1"})
OTHER = Action("sql.execute", "pg/prod", {"sql": "UPDATE t SET x = 2"})
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def new_request(stages: list[StagePlan], uses: int = 1) -> Request:
    return Request(
        id="r1",
        requester="req",
        action=ACTION,
        reason="because",
        ticket=None,
        context={},
        policy_name="p",
        policy_set_digest="d",
        stages=stages,
        grant_ttl=timedelta(minutes=15),
        grant_uses=uses,
        created_at=T0,
    )


RECORDED = (
    "start",
    "vote",
    "cancel",
    "redeem",
    "start_execution",
    "finish_execution",
    "revoke",
    "tick",
)


class Lifecycle(RuleBasedStateMachine):
    @initialize(
        stage_specs=st.lists(
            st.tuples(
                st.sets(st.sampled_from(PEOPLE), min_size=1),
                st.integers(1, 3),
                st.sets(st.sampled_from(PEOPLE)),  # escalate_to
                st.sampled_from([None, 10, 30]),  # timeout in minutes
            ),
            min_size=1,
            max_size=3,
        ),
        uses=st.integers(1, 3),
        on_timeout=st.sampled_from(["timed_out", "deny"]),
    )
    def setup(self, stage_specs, uses, on_timeout) -> None:
        self.now = T0
        self.ids = (f"g{i}" for i in itertools.count())
        stages = [
            StagePlan(
                f"s{i}",
                frozenset(people),
                quorum,
                timedelta(minutes=timeout) if timeout else None,
                (timedelta(minutes=5),) if timeout else (),
                frozenset(escalate) if timeout else frozenset(),
            )
            for i, (people, quorum, escalate, timeout) in enumerate(stage_specs)
        ]
        self.request = new_request(stages, uses)
        self.log: list[AuditEvent] = []
        for name in RECORDED:  # every command's events go to an audit log, as in a use case
            setattr(self.request, name, self._recorded(getattr(self.request, name)))
        self.request.on_timeout = on_timeout
        self.request.expires_at = T0 + timedelta(hours=3)
        self.redeemed = 0
        self.running = 0  # executions started through the gateway and not yet finished
        self.gateway = False
        self.history = [Status.PENDING]
        try:
            self.request.start(self.now)
            self.startable = True
        except QuorumUnreachable:
            self.startable = False

    def _recorded(self, command):
        def run(*args, **kwargs):
            events = command(*args, **kwargs)
            for ev in events:
                head = (self.log[-1].seq, self.log[-1].hash) if self.log else (0, GENESIS_HASH)
                self.log.append(chain_next(*head, self.now, ev.actor, ev.type, "r1", ev.payload()))
            return events

        return run

    def _apply(self, fn) -> None:
        if not self.startable:
            return
        before = self.request.status
        try:
            fn()
        except SignoffError:
            assert self.request.status is before, "a refused command changed the state"
        if self.request.status is not before:
            assert self.request.status in TRANSITIONS[before]
            self.history.append(self.request.status)

    @rule(voter=st.sampled_from(PEOPLE), deny=st.booleans())
    def vote(self, voter: str, deny: bool) -> None:
        r = self.request
        decision = Decision.DENY if deny else Decision.APPROVE
        eligible = r.status is Status.PENDING and voter in r.stages[r.current_stage].approvers

        def go() -> None:
            try:
                r.vote(voter, decision, "", self.now, lambda: next(self.ids))
            except SelfApproval:
                assert voter == "req"
                raise
            except AlreadyVoted:
                assert voter in {v.voter for v in r.votes}
                raise
            except NotEligible:
                assert not eligible
                raise
            except InvalidTransition:
                assert r.status is not Status.PENDING
                raise

        self._apply(go)

    @rule(actor=st.sampled_from(PEOPLE), admin=st.booleans())
    def cancel(self, actor: str, admin: bool) -> None:
        def go() -> None:
            try:
                self.request.cancel(actor, admin, self.now, "")
            except Forbidden:
                assert actor != "req" and not admin
                raise

        self._apply(go)

    @rule(matching=st.booleans())
    def redeem(self, matching: bool) -> None:
        r = self.request
        action = ACTION if matching else OTHER

        def go() -> None:
            r.redeem(action.digest, "req", self.now)
            assert matching, "a grant was redeemed for another action"
            assert r.grant is not None and self.now < r.grant.expires_at
            assert r.grant.revoked_at is None
            self.redeemed += 1

        self._apply(go)

    @rule(actor=st.sampled_from(["req", "ann"]), admin=st.booleans())
    def start_execution(self, actor: str, admin: bool) -> None:
        r = self.request

        def go() -> None:
            try:
                r.start_execution(actor, admin, self.now, "x1")
            except GrantRefused:
                raise
            except Forbidden:
                assert actor != "req" and not admin
                raise
            assert r.grant is not None and self.now < r.grant.expires_at
            self.redeemed += 1
            self.running += 1
            self.gateway = True

        self._apply(go)

    @rule(ok=st.booleans(), ran=st.booleans())
    def finish_execution(self, ok: bool, ran: bool) -> None:
        if not self.running:
            return
        r = self.request
        self.running -= 1
        before = r.status
        ok = ok and ran
        r.finish_execution("req", self.now, ok, "summary", "digest", "x1", ran)
        assert r.grant is not None
        if not ran and before is Status.APPROVED:  # nothing ran: the use comes back
            self.redeemed -= 1
            assert r.status is Status.APPROVED
        elif before is Status.APPROVED:
            expected = (
                Status.FAILED
                if not ok
                else Status.EXECUTED
                if r.grant.uses_left == 0
                else Status.APPROVED
            )
            assert r.status is expected
        else:  # revoked, expired or cancelled while it ran: the outcome is only recorded
            assert r.status is before
        if r.status is not before:
            assert r.status in TRANSITIONS[before]
            self.history.append(r.status)

    @rule(admin=st.booleans())
    def revoke(self, admin: bool) -> None:
        def go() -> None:
            try:
                self.request.revoke("someone", admin, self.now, "")
            except Forbidden:
                assert not admin
                raise

        self._apply(go)

    @rule(minutes=st.integers(0, 20))
    def tick(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule()
    def scheduler_fires(self) -> None:
        if not self.startable:
            return
        r = self.request
        before = r.status
        r.tick(self.now)
        if r.status is not before:
            assert r.status in TRANSITIONS[before]
            self.history.append(r.status)
        assert r.tick(self.now) == [], "a second sweep at the same moment fired again"
        due = r.next_due_at
        assert due is None or due > self.now

    @invariant()
    def the_state_is_what_its_history_says(self) -> None:
        """Replaying the audited events gives the request's state (what `audit verify`
        relies on to find tables edited behind the log's back)."""
        if self.startable:
            assert differences(self.request, replay(self.log)) == []

    @invariant()
    def never_self_approved_and_people_count_once(self) -> None:
        if not self.startable:
            return
        voters = [v.voter for v in self.request.votes]
        assert "req" not in voters
        assert len(voters) == len(set(voters))
        for v in self.request.votes:
            plan = self.request.stages[v.stage]
            assert v.voter in plan.approvers | plan.escalate_to

    @invariant()
    def approval_needs_every_quorum(self) -> None:
        r = self.request
        if not self.startable or Status.APPROVED not in self.history:
            return
        for i, s in enumerate(r.stages):
            assert len(r.approvals_in(i)) >= s.quorum

    @invariant()
    def never_redeemed_beyond_uses(self) -> None:
        r = self.request
        assert self.redeemed <= r.grant_uses
        if r.grant is not None:
            assert r.grant.uses_left == r.grant.uses_total - self.redeemed >= 0
        if self.redeemed == r.grant_uses and self.startable and not self.gateway:
            assert r.status is Status.EXECUTED
        if r.grant is not None and r.grant.uses_left == 0 and not self.running:
            # no approved request sits with nothing left to use and nothing running
            assert r.status is not Status.APPROVED


TestLifecycle = Lifecycle.TestCase
TestLifecycle.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


def test_a_person_in_two_eligible_groups_counts_once() -> None:
    # carol is in both groups; resolving the stage to people makes her one approver
    stage = StagePlan("s", frozenset({"bob", "carol"}) | frozenset({"carol", "dave"}), 2)
    r = new_request([stage])
    r.start(T0)
    r.vote("carol", Decision.APPROVE, "", T0, lambda: "g")
    assert r.status is Status.PENDING and r.still_needed() == 1
    with pytest.raises(AlreadyVoted):
        r.vote("carol", Decision.APPROVE, "", T0, lambda: "g")
    r.vote("dave", Decision.APPROVE, "", T0, lambda: "g")
    assert r.status is Status.APPROVED


def test_unreachable_quorum_is_refused_at_submission() -> None:
    r = new_request([StagePlan("s", frozenset({"req", "ann"}), 2)])
    with pytest.raises(QuorumUnreachable):
        r.start(T0)


def test_expired_grant_is_refused_with_reason() -> None:
    r = new_request([])
    r.start(T0)
    r.approve("policy", T0, lambda: "g")
    with pytest.raises(GrantRefused) as info:
        r.redeem(ACTION.digest, "req", T0 + timedelta(minutes=16))
    assert info.value.reason == "expired"


def test_a_quorum_reachable_only_after_escalation_is_accepted() -> None:
    stage = StagePlan(
        "s", frozenset({"ann"}), 2, timedelta(minutes=30), (), frozenset({"ben", "cat"})
    )
    r = new_request([stage])
    r.start(T0)  # ann alone cannot make 2, but the escalation adds ben and cat
    r.vote("ann", Decision.APPROVE, "", T0, lambda: "g")
    with pytest.raises(NotEligible):
        r.vote("ben", Decision.APPROVE, "", T0, lambda: "g")
    r.tick(T0 + timedelta(minutes=30))
    assert r.escalation_level == 1
    r.vote("ben", Decision.APPROVE, "", T0 + timedelta(minutes=31), lambda: "g")
    assert r.status is Status.APPROVED


def test_only_an_admin_revokes_a_grant() -> None:
    r = new_request([])
    r.start(T0)
    r.approve("policy", T0, lambda: "g")
    with pytest.raises(Forbidden):
        r.revoke("req", False, T0, "")
    assert r.status is Status.APPROVED
    r.revoke("root", True, T0, "leak")
    assert r.status is Status.REVOKED and r.grant is not None and r.grant.revoked_at == T0
