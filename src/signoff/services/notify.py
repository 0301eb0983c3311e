"""Who hears of what, on which channel, and what the outbox row says.

Message text is the channels' business (``adapters/channels/messages.py``); this module
decides the audience of each event (approvers whose vote is wanted, or the requester),
the channels each audience is told on, the digest window a row waits for, and the
payload an outbox row carries, built from the request at the moment of the change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, assert_never

from signoff.domain.events import (
    DomainEvent,
    EventType,
    ExecutionFinished,
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
from signoff.domain.requests import Request
from signoff.services.messages import (
    APPROVERS,
    REQUESTER,
    Details,
    Message,
    summarize,
)

if TYPE_CHECKING:
    from signoff.services.dependencies import Services

# Events that people should hear about; the notification work reads these outbox rows.
NOTIFY_EVENTS: frozenset[EventType] = frozenset(
    {
        EventType.REQUEST_SUBMITTED,
        EventType.STAGE_ADVANCED,
        EventType.STAGE_ESCALATED,
        EventType.REQUEST_REMINDED,
        EventType.REQUEST_APPROVED,
        EventType.REQUEST_DENIED,
        EventType.REQUEST_CANCELLED,
        EventType.REQUEST_REVOKED,
        EventType.REQUEST_EXECUTED,
        EventType.REQUEST_FAILED,
        EventType.REQUEST_TIMED_OUT,
        EventType.GRANT_EXPIRING,
        EventType.REQUEST_EXPIRED,
    }
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def audiences(request: Request, ev: DomainEvent) -> list[tuple[str, list[str]]]:
    """Who should hear of an event, as (audience, people): approvers when their vote is
    wanted (and the requester too when their request is escalated), else the requester."""
    if ev.type not in NOTIFY_EVENTS:
        return []
    if isinstance(ev, RequestSubmitted | StageAdvanced):
        return [(APPROVERS, sorted(request.awaiting()))]
    if isinstance(ev, StageEscalated):
        return [(APPROVERS, list(ev.added)), (REQUESTER, [request.requester])]
    if isinstance(ev, RequestReminded):
        return [(APPROVERS, list(ev.to))]
    return [(REQUESTER, [request.requester])]


def digest_slot(now: datetime, every: timedelta) -> datetime:
    """The end of the digest window ``now`` falls in: windows are aligned on the epoch,
    so everything asked within one window leaves together."""
    windows = -(-(now - EPOCH) // every)  # ceiling division
    return EPOCH + windows * every


def channels_for(svc: Services, request: Request, audience: str) -> tuple[str, ...]:
    """The requester is told on the channels their profile prefers (among those
    configured), else everyone on the request's channels (its policy's, else the
    server's)."""
    if audience == REQUESTER:
        user = svc.directory.users.get(request.requester)
        preferred = tuple(c for c in (user.notify if user else ()) if c in svc.channels)
        if preferred:
            return preferred
    return request.notify or svc.channels


def message(request: Request, ev: DomainEvent, seq: int, executes: bool = False) -> Message:
    """What an outbox row says: the event and the request as it was at that moment
    (addressed later, per audience, with ``Message.to_people``)."""
    details = _details(ev)
    if "added" in details:
        details["added"] = tuple(details["added"])
    return Message(
        event=ev.type.value,
        audit_seq=seq,
        status=request.status.value,
        actor=ev.actor,
        details=Details(**details),
        request=summarize(request, executes),
    )


def _details(ev: DomainEvent) -> dict[str, Any]:
    """What a message about this event may say beyond the request: who, why, when."""
    match ev:
        case RequestMoved():
            moved: dict[str, Any] = {}
            if ev.by is not None:
                moved["by"] = ev.by
            if ev.comment is not None:
                moved["comment"] = ev.comment
            if ev.uses_left is not None:
                moved["uses_left"] = ev.uses_left
            if ev.result is not None:
                moved["summary"] = ev.result.summary
            return moved
        case VoteCast():
            return {"comment": ev.comment, "stage": ev.stage}
        case GrantIssued():
            return {"expires_at": ev.expires_at.isoformat()}
        case GrantExpiring():
            return {"expires_at": ev.expires_at.isoformat(), "uses_left": ev.uses_left}
        case GrantRedeemed() | GrantUseReturned() | ExecutionStarted():
            return {"uses_left": ev.uses_left}
        case ExecutionFinished():
            return {"summary": ev.result.summary}
        case StageAdvanced():
            return {"name": ev.name, "stage": ev.stage}
        case StageEscalated():
            return {"name": ev.name, "stage": ev.stage, "added": list(ev.added)}
        case RequestReminded():
            return {"stage": ev.stage, "reminder": ev.reminder}
        case RequestSubmitted() | RequestFolded() | GrantRevoked():
            return {}
        case _:
            assert_never(ev)
