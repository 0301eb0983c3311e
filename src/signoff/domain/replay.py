"""A request's history, replayed: what its audit events say its state must be.

The audit chain proves the log was not edited; it does not prove the tables agree with
it. Someone who can write to the database could turn a denied request into an approved
one, or give a grant more uses, without touching the log. ``replay`` derives the state
from the request's events alone, and ``differences`` names every field where the stored
request disagrees with its history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from signoff.domain.audit import AuditEvent
from signoff.domain.events import EventType
from signoff.domain.requests import Request, Status

_MOVES = {f"request.{s.value}": s.value for s in Status}


@dataclass
class Replayed:
    status: str | None = None
    votes: list[tuple[str, str, int]] = field(default_factory=list)
    uses_total: int | None = None
    uses_left: int | None = None
    revoked: bool = False


def replay(events: Iterable[AuditEvent]) -> Replayed:
    """The state a request's events (in sequence order) leave it in."""
    state = Replayed()
    for ev in events:
        p: dict[str, Any] = ev.payload_data()
        if ev.type == EventType.REQUEST_SUBMITTED:
            state.status = Status.PENDING.value
        elif ev.type in _MOVES:
            state.status = _MOVES[ev.type]
        elif ev.type == EventType.VOTE_CAST:
            state.votes.append((ev.actor, str(p.get("decision")), int(p.get("stage", 0))))
        elif ev.type == EventType.GRANT_ISSUED:
            state.uses_total = state.uses_left = int(p.get("uses", 0))
        elif ev.type in (EventType.GRANT_REDEEMED, EventType.EXECUTION_STARTED):
            state.uses_left = (state.uses_left or 0) - 1
        elif ev.type == EventType.GRANT_USE_RETURNED:
            state.uses_left = (state.uses_left or 0) + 1
        elif ev.type == EventType.GRANT_REVOKED:
            state.revoked = True
    return state


def differences(request: Request, history: Replayed) -> list[str]:
    """Where the stored request disagrees with what its events say."""
    found = []
    if history.status is None:
        return [f"request {request.id} has no 'request.submitted' event in the audit log"]
    if request.status.value != history.status:
        found.append(
            f"request {request.id} is stored as {request.status.value!r} but its history "
            f"says {history.status!r}"
        )
    stored = [(v.voter, v.decision.value, v.stage) for v in request.votes]
    if stored != history.votes:
        found.append(
            f"request {request.id} has votes {stored} stored but {history.votes} in its history"
        )
    grant = request.grant
    if (grant is None) != (history.uses_total is None):
        found.append(
            f"request {request.id} {'has' if grant else 'has no'} grant stored, but its "
            f"history {'issued none' if grant else 'issued one'}"
        )
    elif grant is not None:
        if (grant.uses_total, grant.uses_left) != (history.uses_total, history.uses_left):
            found.append(
                f"request {request.id}'s grant has {grant.uses_left} of {grant.uses_total} "
                f"uses stored but {history.uses_left} of {history.uses_total} in its history"
            )
        if (
            grant.revoked_at is not None
        ) != history.revoked and request.status is not Status.CANCELLED:
            found.append(f"request {request.id}'s grant revocation disagrees with its history")
    return found
