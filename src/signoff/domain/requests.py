"""The request aggregate: its state machine, its review and its grant.

States::

    pending ──► approved ──► executed | failed | expired | revoked | cancelled
       └──────► denied | cancelled | timed_out

Every other move raises InvalidTransition. The rules of the review live here, not in
a handler: the requester never votes on their own request; a person votes once per
request and counts once, whatever groups they are in; only the current stage's
approvers vote; a deny by one of them ends the request; an approved request carries
a grant that can be redeemed at most ``uses`` times, only for the approved action,
only before it expires and unless it was revoked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from signoff.domain.actions import Action
from signoff.domain.errors import (
    AlreadyVoted,
    Forbidden,
    GrantRefused,
    InvalidTransition,
    NotEligible,
    PasskeyRefused,
    QuorumUnreachable,
    SelfApproval,
    SignoffError,
    StepUpRequired,
)
from signoff.domain.events import (
    DomainEvent,
    ExecutionFinished,
    ExecutionResult,
    ExecutionStarted,
    GrantExpiring,
    GrantIssued,
    GrantRedeemed,
    GrantRevoked,
    GrantUseReturned,
    RequestFolded,
    RequestMoved,
    RequestReminded,
    RequestSubmitted,
    StageAdvanced,
    StageEscalated,
    VoteCast,
)
from signoff.domain.quorum import first_unstaffable

# The longest reason or comment a person may write (the API, forms and use cases agree).
MAX_TEXT = 4000


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    EXECUTED = "executed"
    FAILED = "failed"
    EXPIRED = "expired"
    REVOKED = "revoked"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.APPROVED, Status.DENIED, Status.CANCELLED, Status.TIMED_OUT}),
    Status.APPROVED: frozenset(
        {Status.EXECUTED, Status.FAILED, Status.EXPIRED, Status.REVOKED, Status.CANCELLED}
    ),
}
FINAL = frozenset(s for s in Status if s not in TRANSITIONS)


def outcome_line(
    to: Status,
    actor: str,
    by: str | None,
    comment: str | None,
    uses_left: int | None,
    result: ExecutionResult | None,
) -> str:
    """Why a request is in a state, as people read it: "denied by bob: too broad",
    "denied by policy 'no-ddl': ...", "timed out: stage 'dba' reached its deadline"."""
    said = f": {comment}" if comment else ""
    who = by or actor
    if to is Status.APPROVED:
        return "approved by policy" if actor == "policy" else f"approved by {actor}"
    if to is Status.DENIED:
        if who == "policy":
            return f"denied: {comment}" if comment else "denied by policy"
        if who == "timeout":
            return f"denied: nobody decided in time{said}"
        return f"denied by {who}{said}"
    if to is Status.TIMED_OUT:
        return f"timed out{said}"
    if to is Status.EXPIRED:
        left = f" with {uses_left} use(s) left" if uses_left else ""
        return f"the grant expired{left}"
    if to in (Status.EXECUTED, Status.FAILED):
        summary = f": {result.summary}" if result is not None and result.summary else ""
        return f"{to.value} by {actor}{summary}"
    return f"{to.value} by {actor}{said}"


class Decision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"

    @property
    def done(self) -> str:
        """As people say it once cast: "approved", "denied"."""
        return "approved" if self is Decision.APPROVE else "denied"


@dataclass(frozen=True)
class StagePlan:
    """One stage of a request's review, with its approvers resolved to people.

    ``timeout`` runs from the moment the stage becomes active; when it passes without a
    quorum, ``escalate_to`` joins the approvers for ``escalation_timeout`` more (or the
    same timeout again); after that the request times out. ``reminders`` are offsets from
    the start of each phase (the stage, then its escalation) at which the approvers who
    have not voted are reminded.
    """

    name: str
    approvers: frozenset[str]
    quorum: int
    timeout: timedelta | None = None
    reminders: tuple[timedelta, ...] = ()
    escalate_to: frozenset[str] = frozenset()
    escalation_timeout: timedelta | None = None
    # "passkey": a vote counts only with a fresh assertion bound to it (``StepUp``)
    approve_with: str | None = None

    def as_dict(self) -> dict[str, Any]:
        extra = {"approve_with": self.approve_with} if self.approve_with else {}
        return {
            "name": self.name,
            "approvers": sorted(self.approvers),
            "quorum": self.quorum,
            "timeout_seconds": self.timeout.total_seconds() if self.timeout else None,
            "reminder_seconds": [r.total_seconds() for r in self.reminders],
            "escalate_to": sorted(self.escalate_to),
            "escalation_timeout_seconds": (
                self.escalation_timeout.total_seconds() if self.escalation_timeout else None
            ),
            **extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StagePlan:
        def secs(v: float | None) -> timedelta | None:
            return timedelta(seconds=v) if v else None

        return cls(
            name=d["name"],
            approvers=frozenset(d["approvers"]),
            quorum=d["quorum"],
            timeout=secs(d.get("timeout_seconds")),
            reminders=tuple(timedelta(seconds=x) for x in d.get("reminder_seconds", [])),
            escalate_to=frozenset(d.get("escalate_to", [])),
            escalation_timeout=secs(d.get("escalation_timeout_seconds")),
            approve_with=d.get("approve_with"),
        )


def stage_deadline(stage: StagePlan, started: datetime, escalation_level: int) -> datetime | None:
    """When a stage's current phase times out: its own timeout, or once escalated its
    escalation's (else the same again)."""
    timeout = stage.timeout if escalation_level == 0 else stage.escalation_timeout or stage.timeout
    return started + timeout if timeout else None


@dataclass(frozen=True)
class StepUp:
    """The proof, verified by the use case, that a vote was made with a second factor
    just now: the passkey (``credential``, a prefix of its id) signed a challenge bound to
    this voter, request, decision and action digest."""

    method: str
    credential: str
    voter: str
    request_id: str
    decision: Decision
    action_digest: str

    def as_dict(self) -> dict[str, str]:
        return {"method": self.method, "credential": self.credential}


def step_up_detail(request_id: str, base_url: str = "") -> str:
    """What a vote on a passkey stage is told when it comes without an assertion."""
    return f"this stage needs a passkey: finish on the web page {base_url}/requests/{request_id}"


@dataclass(frozen=True)
class Vote:
    voter: str
    decision: Decision
    comment: str
    stage: int
    at: datetime


@dataclass
class Grant:
    id: str
    expires_at: datetime
    uses_total: int
    uses_left: int
    issued_at: datetime
    revoked_at: datetime | None = None


@dataclass
class Request:
    id: str
    requester: str
    action: Action
    reason: str
    ticket: str | None
    context: dict[str, Any]
    policy_name: str
    policy_set_digest: str
    stages: list[StagePlan]
    grant_ttl: timedelta
    grant_uses: int
    created_at: datetime
    status: Status = Status.PENDING
    current_stage: int = 0
    stage_started_at: datetime | None = None  # start of the current phase of the stage
    decided_at: datetime | None = None
    votes: list[Vote] = field(default_factory=list)
    grant: Grant | None = None
    version: int = 0
    on_timeout: str = "timed_out"  # or "deny"
    escalation_level: int = 0  # 0: the stage's own approvers; 1: escalated
    reminders_sent: int = 0  # in the current phase
    expires_at: datetime | None = None  # the latest a pending request may stay pending
    fold_count: int = 0  # identical asks folded into this one while it was pending
    notify: tuple[str, ...] = ()  # channels named by the policy; empty: the defaults
    digest_every: timedelta | None = None  # approvers told in batches (policy notify_mode)
    read_only: bool = False  # executions through Signoff run READ ONLY (policy grant)
    executors: frozenset[str] = frozenset()  # who else may execute (policy grant.executors)
    redeemers: frozenset[str] = frozenset()  # the target's enforcement points (grant.redeemers)
    viewers: frozenset[str] = frozenset()  # may see it too (policy visible_to)
    expiry_warned: bool = False  # the requester was told the unused grant expires soon
    outcome: str | None = None  # why it is in its state, in one line ("denied by bob: ...")
    # what the requester was when the policies judged it: groups, claims, admin, email
    # (what a policy replay judges again; None for requests stored before it was kept)
    requester_snapshot: dict[str, Any] | None = None

    # ----- queries -------------------------------------------------------------------

    @property
    def action_digest(self) -> str:
        return self.action.digest

    def escalated(self, stage: int) -> bool:
        """Whether the stage's escalation has joined its approvers."""
        return stage == self.current_stage and self.escalation_level > 0

    def eligible(self, stage: int) -> frozenset[str]:
        """Who may vote in a stage now: its approvers, plus its escalation once escalated."""
        plan = self.stages[stage]
        if self.escalated(stage):
            return plan.approvers | plan.escalate_to
        return plan.approvers

    @property
    def deadline_at(self) -> datetime | None:
        """When the current phase of the current stage times out."""
        if self.status is not Status.PENDING or not self.stages or self.stage_started_at is None:
            return None
        return stage_deadline(
            self.stages[self.current_stage], self.stage_started_at, self.escalation_level
        )

    @property
    def next_reminder_at(self) -> datetime | None:
        if self.status is not Status.PENDING or not self.stages or self.stage_started_at is None:
            return None
        stage = self.stages[self.current_stage]
        if self.reminders_sent >= len(stage.reminders):
            return None
        at = self.stage_started_at + stage.reminders[self.reminders_sent]
        deadline = self.deadline_at
        return at if deadline is None or at < deadline else None

    @property
    def next_due_at(self) -> datetime | None:
        """The next moment something must happen without anyone acting: a reminder, an
        escalation, a timeout or a grant's expiry. The scheduler's indexed column."""
        if self.status is Status.PENDING:
            times = [self.next_reminder_at, self.deadline_at, self.expires_at]
            found = [t for t in times if t is not None]
            return min(found) if found else None
        if self.status is Status.APPROVED and self.grant is not None:
            warn = self.expiry_warning_at
            return warn if warn is not None and not self.expiry_warned else self.grant.expires_at
        return None

    @property
    def expiry_warning_at(self) -> datetime | None:
        """When to tell the requester their unused grant is about to lapse: five minutes
        before, or at four fifths of a shorter grant's life."""
        g = self.grant
        if g is None:
            return None
        lead = min(timedelta(minutes=5), (g.expires_at - g.issued_at) / 5)
        return g.expires_at - lead

    def approvals_in(self, stage: int) -> frozenset[str]:
        return frozenset(
            v.voter for v in self.votes if v.stage == stage and v.decision is Decision.APPROVE
        )

    def voters(self) -> frozenset[str]:
        return frozenset(v.voter for v in self.votes)

    def awaiting(self) -> frozenset[str]:
        """People who may vote now."""
        if self.status is not Status.PENDING or not self.stages:
            return frozenset()
        return self.eligible(self.current_stage) - {self.requester} - self.voters()

    def still_needed(self) -> int:
        if self.status is not Status.PENDING or not self.stages:
            return 0
        stage = self.stages[self.current_stage]
        return max(0, stage.quorum - len(self.approvals_in(self.current_stage)))

    # ----- commands ------------------------------------------------------------------

    def start(self, now: datetime) -> list[DomainEvent]:
        """Check the review can succeed and open its first stage. A stage counts the
        people its escalation would add (a quorum reachable only after escalation is a
        slow review, not an impossible one); each person counts in one stage only, and
        the requester in none."""
        eligible = [
            ((s.approvers | s.escalate_to) - {self.requester}, s.quorum) for s in self.stages
        ]
        short = first_unstaffable(eligible)
        if short is not None:
            stage = self.stages[short]
            people = ", ".join(sorted(eligible[short][0])) or "nobody"
            raise QuorumUnreachable(
                f"stage {short + 1} ({stage.name}) needs {stage.quorum} distinct approvers "
                f"who are not the requester and have not counted in an earlier stage; "
                f"its eligible people are: {people}"
            )
        self.stage_started_at = now
        return [
            RequestSubmitted(
                actor=self.requester,
                action=self.action,
                reason=self.reason,
                ticket=self.ticket,
                policy=self.policy_name,
                policy_set_digest=self.policy_set_digest,
                stages=tuple(self.stages),
            )
        ]

    def vote_refusal(self, voter: str) -> SignoffError | None:
        """Why ``voter`` may not vote now (the error ``vote`` raises), or None: the
        request is not pending, it is their own, they voted already, or they are not an
        approver of the current stage. Pages ask this to say why there is no button."""
        if self.status is not Status.PENDING:
            return InvalidTransition(
                f"request {self.id} is {self.status.value}; votes are only taken while pending"
            )
        if voter == self.requester:
            return SelfApproval("you cannot vote on your own request")
        if voter in self.voters():
            return AlreadyVoted(f"{voter} has already voted on request {self.id}")
        if voter not in self.eligible(self.current_stage):
            stage = self.stages[self.current_stage]
            return NotEligible(
                f"{voter} is not an approver of stage {self.current_stage + 1} ({stage.name})"
            )
        return None

    def step_up_needed(self) -> str | None:
        """What the current stage asks of a vote besides the voter ("passkey"), or None."""
        if self.status is not Status.PENDING or not self.stages:
            return None
        return self.stages[self.current_stage].approve_with

    def vote(
        self,
        voter: str,
        decision: Decision,
        comment: str,
        now: datetime,
        new_id: Callable[[], str],
        step_up: StepUp | None = None,
    ) -> list[DomainEvent]:
        """Count a vote. On a stage with ``approve_with``, only with a ``step_up`` proof
        made for exactly this voter, request, decision and action."""
        refusal = self.vote_refusal(voter)
        if refusal is not None:
            raise refusal
        stage = self.stages[self.current_stage]
        if stage.approve_with is not None:
            if step_up is None or step_up.method != stage.approve_with:
                raise StepUpRequired(step_up_detail(self.id))
            bound = (step_up.voter, step_up.request_id, step_up.decision, step_up.action_digest)
            if bound != (voter, self.id, decision, self.action_digest):
                raise PasskeyRefused(
                    "mismatch", "this passkey confirmation was made for another vote"
                )
        self.votes.append(Vote(voter, decision, comment, self.current_stage, now))
        self.version += 1
        events: list[DomainEvent] = [
            VoteCast(
                actor=voter,
                decision=decision,
                comment=comment,
                stage=self.current_stage,
                step_up=step_up.as_dict() if stage.approve_with and step_up else None,
            )
        ]
        if decision is Decision.DENY:
            events += self._move(Status.DENIED, voter, now, by=voter, comment=comment)
            return events
        if len(self.approvals_in(self.current_stage)) >= stage.quorum:
            if self.current_stage + 1 < len(self.stages):
                self.current_stage += 1
                self.stage_started_at = now
                self.escalation_level = 0
                self.reminders_sent = 0
                nxt = self.stages[self.current_stage]
                events.append(StageAdvanced(actor=voter, stage=self.current_stage, name=nxt.name))
            else:
                events += self.approve(voter, now, new_id)
        return events

    def fold(self, reason: str) -> list[DomainEvent]:
        """The same requester asked for the same action again while this one is pending:
        count it here instead of asking the approvers a second time."""
        if self.status is not Status.PENDING:
            raise InvalidTransition(f"request {self.id} is {self.status.value}; nothing to fold")
        self.fold_count += 1
        self.version += 1
        return [RequestFolded(actor=self.requester, count=self.fold_count, reason=reason)]

    def approve(self, actor: str, now: datetime, new_id: Callable[[], str]) -> list[DomainEvent]:
        """Approve and issue the grant (from a quorum, or directly by an allow policy)."""
        events = self._move(Status.APPROVED, actor, now)
        self.grant = Grant(
            id=new_id(),
            expires_at=now + self.grant_ttl,
            uses_total=self.grant_uses,
            uses_left=self.grant_uses,
            issued_at=now,
        )
        events.append(
            GrantIssued(
                actor=actor,
                grant_id=self.grant.id,
                expires_at=self.grant.expires_at,
                uses=self.grant_uses,
                action_digest=self.action_digest,
            )
        )
        return events

    def deny_by_policy(self, now: datetime, reason: str) -> list[DomainEvent]:
        return self._move(Status.DENIED, "policy", now, by="policy", comment=reason)

    def cancel(self, actor: str, is_admin: bool, now: datetime, comment: str) -> list[DomainEvent]:
        if actor != self.requester and not is_admin:
            raise Forbidden("only the requester or an admin can cancel a request")
        events = self._move(Status.CANCELLED, actor, now, comment=comment)
        if self.grant is not None and self.grant.revoked_at is None:
            self.grant.revoked_at = now
        return events

    def revoke(self, actor: str, is_admin: bool, now: datetime, comment: str) -> list[DomainEvent]:
        if not is_admin:
            raise Forbidden("only an admin can revoke a grant")
        if self.grant is None:
            raise InvalidTransition(f"request {self.id} has no grant to revoke")
        events = self._move(Status.REVOKED, actor, now, comment=comment)
        self.grant.revoked_at = now
        events.append(GrantRevoked(actor=actor, grant_id=self.grant.id))
        return events

    def _redeemable(self, digest: str, now: datetime) -> Grant:
        """Why a redemption would be refused, or the grant it would use."""
        grant = self.grant
        if grant is None:
            raise GrantRefused("no_grant", f"request {self.id} has no grant")
        if grant.revoked_at is not None or self.status in (Status.REVOKED, Status.CANCELLED):
            raise GrantRefused("revoked", "the grant was revoked")
        if now >= grant.expires_at or self.status is Status.EXPIRED:
            raise GrantRefused("expired", "the grant has expired")
        if grant.uses_left <= 0 or self.status is not Status.APPROVED:
            raise GrantRefused("used_up", "the grant has no uses left")
        if digest != self.action_digest:
            raise GrantRefused("action_mismatch", "the action differs from the approved action")
        return grant

    def _take_use(self, digest: str, now: datetime) -> Grant:
        grant = self._redeemable(digest, now)
        grant.uses_left -= 1
        self.version += 1
        return grant

    def may_hold_grant(self, person: str, is_admin: bool) -> bool:
        """Who may see the grant's token: the requester, and admins."""
        return person == self.requester or is_admin

    def asked(self) -> frozenset[str]:
        """Everyone asked to vote so far: every stage's approvers, and the people its
        escalation added to the current stage once it was escalated; voters too."""
        people = frozenset().union(*(s.approvers for s in self.stages))
        if self.stages and self.escalation_level > 0:
            people |= self.stages[self.current_stage].escalate_to
        return people | self.voters()

    def may_read(self, person: str, is_admin: bool) -> bool:
        """Who may see a request at all (its action, reason, votes and timeline): the
        requester, everyone asked to vote on it, the people the policy names as
        executors or lets see it (``visible_to``), and admins. Everyone else is told it
        does not exist."""
        return (
            is_admin
            or person == self.requester
            or person in self.executors
            or person in self.viewers
            or person in self.asked()
        )

    def may_redeem(self, person: str) -> bool:
        """Who may redeem the grant's token: the requester, the people the policy names
        as executors, and the target's enforcement points (``grant.redeemers``), which
        check the grant when the requester acts through them. Not admins, and not
        whoever else got hold of the token."""
        return person == self.requester or person in self.executors or person in self.redeemers

    def may_execute(self, person: str, is_admin: bool) -> bool:
        """Who may have Signoff run the action, and read what ran: the requester, the
        people the policy names (``grant.executors``), and admins."""
        return person == self.requester or person in self.executors or is_admin

    def redeem(self, digest: str, actor: str, now: datetime) -> list[DomainEvent]:
        if not self.may_redeem(actor):
            raise GrantRefused("not_allowed", f"{actor} may not redeem this grant")
        grant = self._take_use(digest, now)
        events: list[DomainEvent] = [
            GrantRedeemed(actor=actor, grant_id=grant.id, uses_left=grant.uses_left)
        ]
        if grant.uses_left == 0:
            events += self._move(Status.EXECUTED, actor, now, grant_id=grant.id)
        return events

    def start_execution(
        self, actor: str, is_admin: bool, now: datetime, execution_id: str
    ) -> list[DomainEvent]:
        """Signoff is to perform the stored action: the requester (or someone the policy
        names, or an admin) takes one use of the grant. Nothing but the approved action
        can run this way: the digest checked is the request's own."""
        if not self.may_execute(actor, is_admin):
            who = ", ".join([self.requester, *sorted(self.executors)])
            raise Forbidden(f"only {who} or an admin may execute request {self.id}")
        grant = self._take_use(self.action_digest, now)
        return [
            ExecutionStarted(
                actor=actor,
                execution_id=execution_id,
                grant_id=grant.id,
                uses_left=grant.uses_left,
                read_only=self.read_only,
            )
        ]

    def finish_execution(
        self,
        actor: str,
        now: datetime,
        ok: bool,
        summary: str,
        digest: str,
        execution_id: str,
        ran: bool = True,
    ) -> list[DomainEvent]:
        """Record how an execution ended: a failure ends the request (``failed``); a
        success that used the last use ends it as ``executed``; an execution that could
        not start (``ran`` false: the target was unreachable) gives its use back
        (``grant.use_returned``)."""
        assert self.grant is not None
        result = ExecutionResult(
            execution_id=execution_id,
            ok=ok,
            ran=ran,
            summary=summary[:500],
            output_digest=digest,
        )
        self.version += 1
        events: list[DomainEvent] = [ExecutionFinished(actor=actor, result=result)]
        if self.status is not Status.APPROVED:
            return events  # revoked or expired while it ran: the outcome is still recorded
        if not ran:
            self.grant.uses_left += 1
            return [
                *events,
                GrantUseReturned(
                    actor=actor, grant_id=self.grant.id, uses_left=self.grant.uses_left
                ),
            ]
        if not ok:
            events += self._move(Status.FAILED, actor, now, result=result)
        elif self.grant.uses_left == 0:
            events += self._move(Status.EXECUTED, actor, now, result=result)
        return events

    def tick(self, now: datetime) -> list[DomainEvent]:
        """Do whatever has fallen due by ``now``: reminders, escalation, timeout, expiry.

        Idempotent: a second call at the same time finds nothing due, because every
        firing moves the state (and so ``next_due_at``) forward.
        """
        events: list[DomainEvent] = []
        for _ in range(16):  # a bounded catch-up after a long outage
            due = self.next_due_at
            if due is None or due > now:
                break
            events += self._fire(now)
        return events

    def _fire(self, now: datetime) -> list[DomainEvent]:
        if self.status is Status.APPROVED:
            assert self.grant is not None
            warn = self.expiry_warning_at
            if not self.expiry_warned and warn is not None and warn <= now < self.grant.expires_at:
                self.expiry_warned = True
                self.version += 1
                return [
                    GrantExpiring(
                        actor="scheduler",
                        grant_id=self.grant.id,
                        expires_at=self.grant.expires_at,
                        uses_left=self.grant.uses_left,
                    )
                ]
            self.expiry_warned = True  # past expiry: no warning any more
            return self._move(
                Status.EXPIRED,
                "scheduler",
                now,
                grant_id=self.grant.id,
                uses_left=self.grant.uses_left,
            )
        if self.expires_at is not None and self.expires_at <= now:
            return self._time_out(now, "the request stayed pending for the longest time allowed")
        deadline = self.deadline_at
        if deadline is not None and deadline <= now:
            stage = self.stages[self.current_stage]
            added = stage.escalate_to - stage.approvers - {self.requester}
            if self.escalation_level == 0 and stage.escalate_to:
                self.escalation_level = 1
                self.stage_started_at = now
                self.reminders_sent = 0
                self.version += 1
                return [
                    StageEscalated(
                        actor="scheduler",
                        stage=self.current_stage,
                        name=stage.name,
                        added=tuple(sorted(added)),
                        still_needed=self.still_needed(),
                    )
                ]
            return self._time_out(now, f"stage {stage.name!r} reached its deadline")
        reminder = self.next_reminder_at
        if reminder is not None and reminder <= now:
            self.reminders_sent += 1
            self.version += 1
            return [
                RequestReminded(
                    actor="scheduler",
                    stage=self.current_stage,
                    reminder=self.reminders_sent,
                    to=tuple(sorted(self.awaiting())),
                )
            ]
        raise AssertionError("nothing was due")  # pragma: no cover - next_due_at says so

    def _time_out(self, now: datetime, why: str) -> list[DomainEvent]:
        if self.on_timeout == "deny":
            return self._move(Status.DENIED, "scheduler", now, by="timeout", comment=why)
        return self._move(Status.TIMED_OUT, "scheduler", now, comment=why)

    def _move(
        self,
        to: Status,
        actor: str,
        now: datetime,
        *,
        by: str | None = None,
        comment: str | None = None,
        grant_id: str | None = None,
        uses_left: int | None = None,
        result: ExecutionResult | None = None,
    ) -> list[DomainEvent]:
        allowed = TRANSITIONS.get(self.status, frozenset())
        if to not in allowed:
            raise InvalidTransition(
                f"request {self.id} is {self.status.value} and cannot become {to.value}"
            )
        previous = self.status
        self.status = to
        self.version += 1
        if previous is Status.PENDING:
            self.decided_at = now
        self.outcome = outcome_line(to, actor, by, comment, uses_left, result)
        return [
            RequestMoved(
                actor=actor,
                from_status=previous,
                to_status=to,
                by=by,
                comment=comment,
                grant_id=grant_id,
                uses_left=uses_left,
                result=result,
            )
        ]
