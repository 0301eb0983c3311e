"""How a use case stores what the domain decided: the request's new state, an audit
event per domain event, and the outbox rows that tell people, in one transaction; and,
after the commit, the wake-ups of live streams and of the dispatcher."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from signoff.domain.events import DomainEvent, RequestMoved, StageEscalated
from signoff.domain.requests import Request, Status
from signoff.services import notify
from signoff.services.messages import APPROVERS, REQUESTER, WATCHERS, Message
from signoff.services.ports import UnitOfWork

if TYPE_CHECKING:
    from signoff.services.dependencies import Services


# The decisions a waiting GitHub deployment hears of (services/github.py): the first
# move out of pending.
DECIDED = frozenset({Status.APPROVED, Status.DENIED, Status.TIMED_OUT, Status.CANCELLED})
GITHUB = "github"  # the outbox channel of deployment reviews sent back to GitHub

# What a move adds to the requester's record (history.approved and friends).
TALLIED = {
    Status.APPROVED: "approved",
    Status.EXECUTED: "executed",
    Status.DENIED: "denied",
    Status.FAILED: "incident",
    Status.REVOKED: "incident",
}


def save_changes(
    svc: Services,
    uow: UnitOfWork,
    now: datetime,
    request: Request,
    version: int,
    events: list[DomainEvent],
) -> None:
    """Store a request changed by a domain command (if it was still at ``version``),
    with its audit events and outbox rows."""
    uow.requests.save(request, version)
    if events:
        record_changes(svc, uow, now, request, events)


def record_changes(
    svc: Services,
    uow: UnitOfWork,
    now: datetime,
    request: Request,
    events: list[DomainEvent],
    answered: bool = False,
) -> None:
    """Audit every event and, in the same transaction as the state change, write the
    outbox rows that tell people of it.

    Under a digest policy approvers' rows wait for the end of the digest window, one row
    per person on personal channels so the dispatcher can send each person one message.
    Channels that keep one message up to date get a row for the last change of the
    transaction, whoever it concerns.

    ``answered``: the requester reads these changes in the answer to their own call (a
    submission a policy decided at once): they are not also messaged about them, but
    feeds (webhooks) and the channels watchers follow still hear. An agent's or a
    pipeline's allowed asks then cost no message to anyone."""
    told: set[str] = set()
    executes = request.action.target in svc.targets
    built: dict[int, Message] = {}

    def message(i: int) -> Message:
        """The message of event ``i``, built when someone is to hear of it (an allowed
        call's events tell nobody: building them was a fifth of its recording)."""
        if i not in built:
            built[i] = notify.message(request, events[i], audited[i].seq, executes=executes)
        return built[i]

    def post(channel: str, row: Message, not_before: datetime | None = None) -> None:
        uow.outbox.add(channel, request.id, row.payload(), now, not_before=not_before)
        uow.outboxed = True  # the dispatcher is woken after the commit

    audited = uow.audit.append_all(now, request.id, events)
    decided: int | None = None
    for i, ev in enumerate(events):
        if isinstance(ev, StageEscalated):
            uow.flow.add(request.id, [""], "escalated", "", now)
        elif isinstance(ev, RequestMoved) and ev.to_status in TALLIED:
            uow.flow.tally(request.requester, request.action, TALLIED[ev.to_status], now)
            svc.history_cache.forget(request.requester)
        if isinstance(ev, RequestMoved) and ev.from_status is Status.PENDING:
            decided = i if ev.to_status in DECIDED else decided
        for audience, to in notify.audiences(request, ev):
            if not to:
                continue  # e.g. no approver hears of a request a policy decided outright
            every = request.digest_every if audience == APPROVERS else None
            slot = notify.digest_slot(now, every) if every else None
            for channel in notify.channels_for(svc, request, audience):
                if answered and audience == REQUESTER and channel not in svc.feed_channels:
                    continue
                told.add(channel)
                if slot is not None and channel in svc.personal_channels:
                    for person in to:
                        row = message(i).to_people(audience, [person], digest=True)
                        post(channel, row, slot)
                else:
                    post(channel, message(i).to_people(audience, to), slot)
    for channel in request.notify or svc.channels:
        if channel in svc.tracking_channels and channel not in told and events:
            post(channel, message(len(events) - 1).to_people(WATCHERS, []))
    if decided is not None and svc.github and uow.github.waiting(request.id):
        # the run waiting on GitHub hears of the decision through the outbox (retried)
        post(GITHUB, message(decided).to_people(WATCHERS, []))
    uow.touched.add(request.id)


def publish_changes(svc: Services, uow: UnitOfWork) -> None:
    """After commit: wake live streams of the changed requests, and the dispatcher when
    there is something to deliver (its round is a write transaction of its own)."""
    for rid in uow.touched:
        svc.bus.publish(rid)
    if uow.outboxed:
        svc.wake_dispatcher()
