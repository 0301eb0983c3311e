"""The outbox dispatcher: deliver notification rows, retry with backoff, dead-letter.

Rows are written by the use cases in the same transaction as the state change they
announce. The dispatcher claims due rows in a short transaction (each claim counts one
attempt and moves the row's next attempt a lease ahead), delivers outside any
transaction, then records the outcome: delivered; or retried after
``backoff * 2**(attempt-1)`` seconds (capped); or, after ``max_attempts``, dead-lettered
with an audit event. Delivery is at least once; receivers dedupe on the row id.

Two things hold messages back. Quiet hours per channel: a row claimed inside them is put
back until they end, without counting an attempt. Digests: rows of a digest policy are
written to leave at the end of their window, one per person on personal channels; the
rows of one person and channel claimed together go out as one message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from signoff.domain.errors import Conflict
from signoff.domain.events import OutboxDeadLettered, OutboxRequeued
from signoff.domain.identity import User
from signoff.domain.quiet_hours import QuietHours
from signoff.services.dependencies import Services
from signoff.services.ports import (
    Channel,
    DeliveryError,
    DigestChannel,
    FlowEntry,
    Notification,
)

log = logging.getLogger("signoff.dispatcher")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    backoff: timedelta = timedelta(seconds=2)
    backoff_max: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(seconds=60)

    def delay(self, attempt: int) -> timedelta:
        return min(self.backoff * (1 << max(0, attempt - 1)), self.backoff_max)


@dataclass(frozen=True)
class DispatchResult:
    claimed: int
    delivered: int
    retried: int
    dead: int


def dispatch_due(
    svc: Services,
    channels: Mapping[str, Channel],
    retry: RetryPolicy,
    limit: int = 50,
    quiet: Mapping[str, QuietHours] | None = None,
) -> DispatchResult:
    quiet = quiet or {}
    with svc.uow() as uow:
        now = svc.clock.now()
        claimed = uow.outbox.claim(now, limit, retry.lease)
        # rows asking someone to vote, by row id: their request's id
        asking: dict[int, str] = {
            n.id: n.request_id
            for n in claimed
            if n.message.asks_to_vote and n.request_id is not None
        }
        statuses = uow.requests.statuses_of(asking.values())
        stale = {row for row, rid in asking.items() if statuses.get(rid) != "pending"}
        waiting = []
        for n in claimed:
            hours = quiet.get(n.channel)
            until = hours.until(now) if hours is not None and n.id not in stale else None
            if until is not None:  # quiet hours: it leaves when they end
                uow.outbox.defer(n.id, until)
                waiting.append(n.id)
        uow.commit()
    outcomes: list[tuple[Notification, str | None]] = []
    batches: dict[tuple[str, str], list[Notification]] = {}
    for n in claimed:
        if n.id in stale:  # decided meanwhile: nobody is asked about a decided request
            outcomes.append((n, None))
        elif n.id in waiting:
            continue
        elif n.message.digest and n.message.to:
            batches.setdefault((n.channel, n.message.to[0]), []).append(n)
        else:
            outcomes += _deliver(channels.get(n.channel), n.channel, [n], None)
    for (name, person), batch in batches.items():
        outcomes += _deliver(channels.get(name), name, batch, person)
    delivered = retried = dead = 0
    if outcomes:
        with svc.uow() as uow:
            now = svc.clock.now()
            done: list[int] = []
            asked: list[FlowEntry] = []
            for n, error in outcomes:
                if error is None:
                    done.append(n.id)
                    if n.id in asking and n.id not in stale:  # told, not only done with
                        rid = asking[n.id]
                        asked.append(FlowEntry(rid, n.message.to, "notified", n.channel, now))
                    delivered += 1
                    svc.observer.delivery(n.channel, "delivered")
                elif n.attempt >= retry.max_attempts:
                    uow.outbox.dead(n.id, error)
                    uow.audit.append(
                        now,
                        n.request_id,
                        OutboxDeadLettered(
                            actor="dispatcher",
                            outbox_id=n.id,
                            channel=n.channel,
                            attempts=n.attempt,
                            error=error,
                            event=n.message.event,
                        ),
                    )
                    dead += 1
                    svc.observer.delivery(n.channel, "dead")
                else:
                    uow.outbox.retry(n.id, now + retry.delay(n.attempt), error)
                    retried += 1
                    svc.observer.delivery(n.channel, "failed")
            uow.outbox.delivered(done)
            uow.flow.add_all(asked)
            uow.commit()
    return DispatchResult(len(claimed), delivered, retried, dead)


def requeue_dead_letter(svc: Services, user: User, outbox_id: int) -> Notification:
    """Give a dead letter new attempts (an admin, once its receiver is fixed): it is due
    now with its attempts counted from zero, audited, and the dispatcher is woken.
    Returns the row as it was."""
    user.require_admin("retry a notification")
    with svc.uow() as uow:
        now = svc.clock.now()
        row = uow.outbox.requeue(outbox_id, now)
        if row is None:
            raise Conflict(f"outbox row {outbox_id} is not a dead letter (or does not exist)")
        uow.audit.append(
            now,
            row.request_id,
            OutboxRequeued(
                actor=user.name,
                outbox_id=row.id,
                channel=row.channel,
                attempts=row.attempt,
                event=row.payload.get("event"),
            ),
        )
        uow.commit()
    svc.wake_dispatcher()
    return row


def _deliver(
    channel: Channel | None, name: str, batch: list[Notification], person: str | None
) -> list[tuple[Notification, str | None]]:
    """Send one notification, or a digest of several for one person; every row of the
    batch shares the outcome."""
    try:
        if channel is None:
            raise DeliveryError(f"no channel named {name!r} is configured")
        if person is not None and len(batch) > 1 and isinstance(channel, DigestChannel):
            channel.send_digest(person, batch)
        else:
            for n in batch:
                channel.send(n)
        error = None
    except DeliveryError as exc:
        error = str(exc)
    except Exception as exc:  # a channel bug must not stop the others
        log.exception("channel %s failed", name)
        error = f"{type(exc).__name__}: {exc}"
    return [(n, error) for n in batch]
