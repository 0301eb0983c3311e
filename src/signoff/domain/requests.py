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
    QuorumUnreachable,
    SelfApproval,
)


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


class Decision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


@dataclass(frozen=True)
class StagePlan:
    """One stage of a request's review, with its approvers resolved to people."""

    name: str
    approvers: frozenset[str]
    quorum: int
    timeout: timedelta | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "approvers": sorted(self.approvers),
            "quorum": self.quorum,
            "timeout_seconds": self.timeout.total_seconds() if self.timeout else None,
        }


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


@dataclass(frozen=True)
class Happened:
    """A domain event: what the audit log and the outbox will record."""

    type: str
    actor: str
    payload: dict[str, Any]


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
    stage_started_at: datetime | None = None
    decided_at: datetime | None = None
    votes: list[Vote] = field(default_factory=list)
    grant: Grant | None = None
    version: int = 0

    # ----- queries -------------------------------------------------------------------

    @property
    def action_digest(self) -> str:
        return self.action.digest

    @property
    def deadline_at(self) -> datetime | None:
        """When the current stage's timeout passes (acted on by the scheduler)."""
        if self.status is not Status.PENDING or not self.stages:
            return None
        stage = self.stages[self.current_stage]
        if stage.timeout is None or self.stage_started_at is None:
            return None
        return self.stage_started_at + stage.timeout

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
        stage = self.stages[self.current_stage]
        return stage.approvers - {self.requester} - self.voters()

    def still_needed(self) -> int:
        if self.status is not Status.PENDING or not self.stages:
            return 0
        stage = self.stages[self.current_stage]
        return max(0, stage.quorum - len(self.approvals_in(self.current_stage)))

    # ----- commands ------------------------------------------------------------------

    def start(self, now: datetime) -> list[Happened]:
        """Check the review can succeed and open its first stage."""
        for i, stage in enumerate(self.stages):
            possible = stage.approvers - {self.requester}
            if len(possible) < stage.quorum:
                raise QuorumUnreachable(
                    f"stage {i + 1} ({stage.name}) needs {stage.quorum} distinct approvers "
                    f"but only {len(possible)} eligible people other than the requester exist"
                )
        self.stage_started_at = now
        return [
            Happened(
                "request.submitted",
                self.requester,
                {
                    "action": self.action.as_dict(),
                    "action_digest": self.action_digest,
                    "reason": self.reason,
                    "ticket": self.ticket,
                    "policy": self.policy_name,
                    "policy_set_digest": self.policy_set_digest,
                    "stages": [s.as_dict() for s in self.stages],
                },
            )
        ]

    def vote(
        self, voter: str, decision: Decision, comment: str, now: datetime, new_id: Callable[[], str]
    ) -> list[Happened]:
        if self.status is not Status.PENDING:
            raise InvalidTransition(
                f"request {self.id} is {self.status.value}; votes are only taken while pending"
            )
        if voter == self.requester:
            raise SelfApproval("you cannot vote on your own request")
        if voter in self.voters():
            raise AlreadyVoted(f"{voter} has already voted on request {self.id}")
        stage = self.stages[self.current_stage]
        if voter not in stage.approvers:
            raise NotEligible(
                f"{voter} is not an approver of stage {self.current_stage + 1} ({stage.name})"
            )
        self.votes.append(Vote(voter, decision, comment, self.current_stage, now))
        self.version += 1
        events = [
            Happened(
                "vote.cast",
                voter,
                {"decision": decision.value, "comment": comment, "stage": self.current_stage},
            )
        ]
        if decision is Decision.DENY:
            events += self._move(Status.DENIED, voter, now, {"by": voter, "comment": comment})
            return events
        if len(self.approvals_in(self.current_stage)) >= stage.quorum:
            if self.current_stage + 1 < len(self.stages):
                self.current_stage += 1
                self.stage_started_at = now
                nxt = self.stages[self.current_stage]
                events.append(
                    Happened(
                        "stage.advanced",
                        voter,
                        {"stage": self.current_stage, "name": nxt.name},
                    )
                )
            else:
                events += self.approve(voter, now, new_id)
        return events

    def approve(self, actor: str, now: datetime, new_id: Callable[[], str]) -> list[Happened]:
        """Approve and issue the grant (from a quorum, or directly by an allow policy)."""
        events = self._move(Status.APPROVED, actor, now, {})
        self.grant = Grant(
            id=new_id(),
            expires_at=now + self.grant_ttl,
            uses_total=self.grant_uses,
            uses_left=self.grant_uses,
            issued_at=now,
        )
        events.append(
            Happened(
                "grant.issued",
                actor,
                {
                    "grant_id": self.grant.id,
                    "expires_at": self.grant.expires_at.isoformat(),
                    "uses": self.grant_uses,
                    "action_digest": self.action_digest,
                },
            )
        )
        return events

    def deny_by_policy(self, now: datetime, reason: str) -> list[Happened]:
        return self._move(Status.DENIED, "policy", now, {"by": "policy", "comment": reason})

    def cancel(self, actor: str, is_admin: bool, now: datetime, comment: str) -> list[Happened]:
        if actor != self.requester and not is_admin:
            raise Forbidden("only the requester or an admin can cancel a request")
        events = self._move(Status.CANCELLED, actor, now, {"comment": comment})
        if self.grant is not None and self.grant.revoked_at is None:
            self.grant.revoked_at = now
        return events

    def revoke(self, actor: str, now: datetime, comment: str) -> list[Happened]:
        if self.grant is None:
            raise InvalidTransition(f"request {self.id} has no grant to revoke")
        events = self._move(Status.REVOKED, actor, now, {"comment": comment})
        self.grant.revoked_at = now
        events.append(Happened("grant.revoked", actor, {"grant_id": self.grant.id}))
        return events

    def check_redeemable(self, digest: str, now: datetime) -> Grant:
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

    def redeem(self, digest: str, actor: str, now: datetime) -> list[Happened]:
        grant = self.check_redeemable(digest, now)
        grant.uses_left -= 1
        self.version += 1
        events = [
            Happened(
                "grant.redeemed",
                actor,
                {"grant_id": grant.id, "uses_left": grant.uses_left},
            )
        ]
        if grant.uses_left == 0:
            events += self._move(Status.EXECUTED, actor, now, {"grant_id": grant.id})
        return events

    def _move(
        self, to: Status, actor: str, now: datetime, payload: dict[str, Any]
    ) -> list[Happened]:
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
        return [
            Happened(
                f"request.{to.value}",
                actor,
                {"from": previous.value, "to": to.value, **payload},
            )
        ]
