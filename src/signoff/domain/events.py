"""Domain events: what happened, one frozen dataclass per event, each name defined once.

Every event has an ``actor``, a ``type`` (an :class:`EventType`) and a ``payload()``
derived from its fields: the JSON the audit log stores (and the SSE stream, webhooks
and ``signoff show`` read), so its keys and values are a contract. ``Request`` commands
return :data:`DomainEvent` values; the use cases audit a few events of their own
(:data:`ServiceEvent`): refusals, tokens, dead letters and their requeueing.

A status move is one class, :class:`RequestMoved`, whose type is ``request.<to>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from signoff.domain.actions import Action
    from signoff.domain.requests import Decision, StagePlan, Status


class EventType(StrEnum):
    """Every audit event name."""

    REQUEST_SUBMITTED = "request.submitted"
    VOTE_CAST = "vote.cast"
    STAGE_ADVANCED = "stage.advanced"
    STAGE_ESCALATED = "stage.escalated"
    REQUEST_REMINDED = "request.reminded"
    REQUEST_FOLDED = "request.folded"
    GRANT_ISSUED = "grant.issued"
    GRANT_REVOKED = "grant.revoked"
    GRANT_REDEEMED = "grant.redeemed"
    GRANT_EXPIRING = "grant.expiring"
    GRANT_USE_RETURNED = "grant.use_returned"
    EXECUTION_STARTED = "execution.started"
    EXECUTION_FINISHED = "execution.finished"
    # a status move: request.<to>
    REQUEST_APPROVED = "request.approved"
    REQUEST_DENIED = "request.denied"
    REQUEST_CANCELLED = "request.cancelled"
    REQUEST_TIMED_OUT = "request.timed_out"
    REQUEST_EXECUTED = "request.executed"
    REQUEST_FAILED = "request.failed"
    REQUEST_EXPIRED = "request.expired"
    REQUEST_REVOKED = "request.revoked"
    # audited by the use cases, not the request
    EXECUTION_REFUSED = "execution.refused"
    GRANT_REFUSED = "grant.refused"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    USER_SIGNED_OUT = "user.signed_out"
    PASSKEY_ADDED = "passkey.added"
    PASSKEY_REMOVED = "passkey.removed"
    OUTBOX_DEAD_LETTERED = "outbox.dead_lettered"
    OUTBOX_REQUEUED = "outbox.requeued"

    @classmethod
    def moved_to(cls, status: Status) -> EventType:
        """The event of a move to ``status`` (``request.<status>``)."""
        return cls(f"request.{status.value}")


# ----- the request's events ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RequestSubmitted:
    type: ClassVar[EventType] = EventType.REQUEST_SUBMITTED
    actor: str
    action: Action
    reason: str
    ticket: str | None
    policy: str
    policy_set_digest: str
    stages: tuple[StagePlan, ...]

    def payload(self) -> dict[str, Any]:
        return {
            "action": self.action.as_dict(),
            "action_digest": self.action.digest,
            "reason": self.reason,
            "ticket": self.ticket,
            "policy": self.policy,
            "policy_set_digest": self.policy_set_digest,
            "stages": [s.as_dict() for s in self.stages],
        }


@dataclass(frozen=True, kw_only=True)
class VoteCast:
    type: ClassVar[EventType] = EventType.VOTE_CAST
    actor: str
    decision: Decision
    comment: str
    stage: int
    # on a passkey stage: {"method": "passkey", "credential": <a prefix of its id>}
    step_up: dict[str, str] | None = None

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision": self.decision.value,
            "comment": self.comment,
            "stage": self.stage,
        }
        if self.step_up is not None:
            out["step_up"] = dict(self.step_up)
        return out


@dataclass(frozen=True, kw_only=True)
class StageAdvanced:
    """The quorum of a stage was met and the next stage (``stage``, 0-based) opened."""

    type: ClassVar[EventType] = EventType.STAGE_ADVANCED
    actor: str
    stage: int
    name: str

    def payload(self) -> dict[str, Any]:
        return {"stage": self.stage, "name": self.name}


@dataclass(frozen=True, kw_only=True)
class StageEscalated:
    """A stage reached its deadline; ``added`` (sorted) may now approve too."""

    type: ClassVar[EventType] = EventType.STAGE_ESCALATED
    actor: str
    stage: int
    name: str
    added: tuple[str, ...]
    still_needed: int

    def payload(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "name": self.name,
            "added": list(self.added),
            "still_needed": self.still_needed,
        }


@dataclass(frozen=True, kw_only=True)
class RequestReminded:
    """The approvers who have not voted yet (``to``, sorted) were reminded."""

    type: ClassVar[EventType] = EventType.REQUEST_REMINDED
    actor: str
    stage: int
    reminder: int
    to: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {"stage": self.stage, "reminder": self.reminder, "to": list(self.to)}


@dataclass(frozen=True, kw_only=True)
class RequestFolded:
    """The same ask again while pending; ``count`` asks folded so far."""

    type: ClassVar[EventType] = EventType.REQUEST_FOLDED
    actor: str
    count: int
    reason: str

    def payload(self) -> dict[str, Any]:
        return {"count": self.count, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class GrantIssued:
    type: ClassVar[EventType] = EventType.GRANT_ISSUED
    actor: str
    grant_id: str
    expires_at: datetime
    uses: int
    action_digest: str

    def payload(self) -> dict[str, Any]:
        return {
            "grant_id": self.grant_id,
            "expires_at": self.expires_at.isoformat(),
            "uses": self.uses,
            "action_digest": self.action_digest,
        }


@dataclass(frozen=True, kw_only=True)
class GrantRevoked:
    type: ClassVar[EventType] = EventType.GRANT_REVOKED
    actor: str
    grant_id: str

    def payload(self) -> dict[str, Any]:
        return {"grant_id": self.grant_id}


@dataclass(frozen=True, kw_only=True)
class GrantRedeemed:
    type: ClassVar[EventType] = EventType.GRANT_REDEEMED
    actor: str
    grant_id: str
    uses_left: int

    def payload(self) -> dict[str, Any]:
        return {"grant_id": self.grant_id, "uses_left": self.uses_left}


@dataclass(frozen=True, kw_only=True)
class GrantExpiring:
    type: ClassVar[EventType] = EventType.GRANT_EXPIRING
    actor: str
    grant_id: str
    expires_at: datetime
    uses_left: int

    def payload(self) -> dict[str, Any]:
        return {
            "grant_id": self.grant_id,
            "expires_at": self.expires_at.isoformat(),
            "uses_left": self.uses_left,
        }


@dataclass(frozen=True, kw_only=True)
class GrantUseReturned:
    """An execution could not start: its use of the grant was given back."""

    type: ClassVar[EventType] = EventType.GRANT_USE_RETURNED
    actor: str
    grant_id: str
    uses_left: int

    def payload(self) -> dict[str, Any]:
        return {"grant_id": self.grant_id, "uses_left": self.uses_left}


@dataclass(frozen=True, kw_only=True)
class ExecutionStarted:
    type: ClassVar[EventType] = EventType.EXECUTION_STARTED
    actor: str
    execution_id: str
    grant_id: str
    uses_left: int
    read_only: bool

    def payload(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "grant_id": self.grant_id,
            "uses_left": self.uses_left,
            "read_only": self.read_only,
        }


@dataclass(frozen=True, kw_only=True)
class ExecutionResult:
    """How an execution ended (not an event: carried by two). ``ran`` false: it could
    not start; ``summary`` is at most 500 characters."""

    execution_id: str
    ok: bool
    ran: bool
    summary: str
    output_digest: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "ok": self.ok,
            "ran": self.ran,
            "summary": self.summary,
            "output_digest": self.output_digest,
        }


@dataclass(frozen=True, kw_only=True)
class ExecutionFinished:
    type: ClassVar[EventType] = EventType.EXECUTION_FINISHED
    actor: str
    result: ExecutionResult

    def payload(self) -> dict[str, Any]:
        return self.result.as_dict()


@dataclass(frozen=True, kw_only=True)
class RequestMoved:
    """The request's status changed; its type is ``request.<to_status>``. The optional
    fields say why or with what: who decided (``by``: a voter, ``policy`` or
    ``timeout``), a comment, the grant (and its uses left), or an execution's result."""

    actor: str
    from_status: Status
    to_status: Status
    by: str | None = None
    comment: str | None = None
    grant_id: str | None = None
    uses_left: int | None = None
    result: ExecutionResult | None = None

    @property
    def type(self) -> EventType:
        return EventType.moved_to(self.to_status)

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"from": self.from_status.value, "to": self.to_status.value}
        if self.by is not None:
            out["by"] = self.by
        if self.comment is not None:
            out["comment"] = self.comment
        if self.grant_id is not None:
            out["grant_id"] = self.grant_id
        if self.uses_left is not None:
            out["uses_left"] = self.uses_left
        if self.result is not None:
            out.update(self.result.as_dict())
        return out


DomainEvent = (
    RequestSubmitted
    | VoteCast
    | StageAdvanced
    | StageEscalated
    | RequestReminded
    | RequestFolded
    | GrantIssued
    | GrantRevoked
    | GrantRedeemed
    | GrantExpiring
    | GrantUseReturned
    | ExecutionStarted
    | ExecutionFinished
    | RequestMoved
)
"""What a ``Request`` command returns."""


# ----- audited by the use cases ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GrantRefusal:
    """A token that verified was refused (``reason``: unknown_grant, revoked, expired,
    used_up, action_mismatch, ...)."""

    type: ClassVar[EventType] = EventType.GRANT_REFUSED
    actor: str
    grant_id: str | None
    reason: str
    action_digest: str

    def payload(self) -> dict[str, Any]:
        return {
            "grant_id": self.grant_id,
            "reason": self.reason,
            "action_digest": self.action_digest,
        }


@dataclass(frozen=True, kw_only=True)
class ExecutionRefusal:
    """Someone may not have Signoff run a request (``status``: the request's, then)."""

    type: ClassVar[EventType] = EventType.EXECUTION_REFUSED
    actor: str
    reason: str
    status: Status

    def payload(self) -> dict[str, Any]:
        return {"reason": self.reason, "status": self.status.value}


@dataclass(frozen=True, kw_only=True)
class TokenCreated:
    type: ClassVar[EventType] = EventType.TOKEN_CREATED
    actor: str
    user: str
    label: str

    def payload(self) -> dict[str, Any]:
        return {"user": self.user, "label": self.label}


@dataclass(frozen=True, kw_only=True)
class TokenRevoked:
    """An API token (``token_id``, of ``user``) stopped authenticating."""

    type: ClassVar[EventType] = EventType.TOKEN_REVOKED
    actor: str
    token_id: str
    user: str
    label: str

    def payload(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "user": self.user, "label": self.label}


@dataclass(frozen=True, kw_only=True)
class UserSignedOut:
    """Someone (``actor``: an admin, or ``admin`` for the CLI) ended every web session
    of ``user`` (``sessions``: how many) and revoked all their API tokens (``tokens``:
    the ids of those still active)."""

    type: ClassVar[EventType] = EventType.USER_SIGNED_OUT
    actor: str
    user: str
    sessions: int
    tokens: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        return {"user": self.user, "sessions": self.sessions, "tokens": list(self.tokens)}


@dataclass(frozen=True, kw_only=True)
class PasskeyAdded:
    """``user`` enrolled a passkey named ``name`` (``credential``: a prefix of its id)."""

    type: ClassVar[EventType] = EventType.PASSKEY_ADDED
    actor: str
    user: str
    name: str
    credential: str

    def payload(self) -> dict[str, Any]:
        return {"user": self.user, "name": self.name, "credential": self.credential}


@dataclass(frozen=True, kw_only=True)
class PasskeyRemoved:
    """A passkey of ``user`` was removed: it approves nothing any more."""

    type: ClassVar[EventType] = EventType.PASSKEY_REMOVED
    actor: str
    user: str
    name: str
    credential: str

    def payload(self) -> dict[str, Any]:
        return {"user": self.user, "name": self.name, "credential": self.credential}


@dataclass(frozen=True, kw_only=True)
class OutboxDeadLettered:
    """A notification was given up after ``attempts`` deliveries (``error``: the last
    one's, at most 500 characters; ``event``: the event it was about)."""

    type: ClassVar[EventType] = EventType.OUTBOX_DEAD_LETTERED
    actor: str
    outbox_id: int
    channel: str
    attempts: int
    error: str
    event: str | None

    def payload(self) -> dict[str, Any]:
        return {
            "outbox_id": self.outbox_id,
            "channel": self.channel,
            "attempts": self.attempts,
            "error": self.error[:500],
            "event": self.event,
        }


@dataclass(frozen=True, kw_only=True)
class OutboxRequeued:
    """A dead letter was put back in the queue by someone, for new attempts
    (``attempts``: how many it had had; ``event``: the event it is about)."""

    type: ClassVar[EventType] = EventType.OUTBOX_REQUEUED
    actor: str
    outbox_id: int
    channel: str
    attempts: int
    event: str | None

    def payload(self) -> dict[str, Any]:
        return {
            "outbox_id": self.outbox_id,
            "channel": self.channel,
            "attempts": self.attempts,
            "event": self.event,
        }


ServiceEvent = (
    GrantRefusal
    | ExecutionRefusal
    | TokenCreated
    | TokenRevoked
    | UserSignedOut
    | PasskeyAdded
    | PasskeyRemoved
    | OutboxDeadLettered
    | OutboxRequeued
)
"""What the use cases audit themselves, outside a request's commands."""

AuditedEvent = DomainEvent | ServiceEvent
"""Every event the audit log records."""
