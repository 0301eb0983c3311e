"""The outbox dispatcher: deliver notification rows, retry with backoff, dead-letter.

Rows are written by the use cases in the same transaction as the state change they
announce. The dispatcher claims due rows in a short transaction (each claim counts one
attempt and moves the row's next attempt a lease ahead), delivers outside any
transaction, then records the outcome: delivered; or retried after
``backoff * 2**(attempt-1)`` seconds (capped); or, after ``max_attempts``, dead-lettered
with an audit event. Delivery is at least once; receivers dedupe on the row id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from signoff.services.core import Services
from signoff.services.ports import Channel, DeliveryError, Notification

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


# Events that ask approvers to act: pointless once the request is no longer pending.
ASKING = frozenset({"request.submitted", "stage.advanced", "stage.escalated", "request.reminded"})


def dispatch_due(
    svc: Services, channels: Mapping[str, Channel], retry: RetryPolicy, limit: int = 50
) -> DispatchResult:
    with svc.uow() as uow:
        claimed = uow.outbox.claim(svc.clock.now(), limit, retry.lease)
        stale = {
            n.id
            for n in claimed
            if n.payload.get("event") in ASKING
            and n.request_id is not None
            and uow.requests.status_of(n.request_id) != "pending"
        }
        uow.commit()
    outcomes: list[tuple[Notification, str | None]] = []
    for n in claimed:
        if n.id in stale:  # decided meanwhile: nobody is asked about a decided request
            outcomes.append((n, None))
            continue
        channel = channels.get(n.channel)
        try:
            if channel is None:
                raise DeliveryError(f"no channel named {n.channel!r} is configured")
            channel.send(n)
            outcomes.append((n, None))
        except DeliveryError as exc:
            outcomes.append((n, str(exc)))
        except Exception as exc:  # a channel bug must not stop the others
            log.exception("channel %s failed", n.channel)
            outcomes.append((n, f"{type(exc).__name__}: {exc}"))
    delivered = retried = dead = 0
    if outcomes:
        with svc.uow() as uow:
            now = svc.clock.now()
            for n, error in outcomes:
                if error is None:
                    uow.outbox.delivered(n.id)
                    delivered += 1
                    svc.observer.delivery(n.channel, "delivered")
                elif n.attempt >= retry.max_attempts:
                    uow.outbox.dead(n.id, error)
                    uow.audit.append(
                        now,
                        "dispatcher",
                        "outbox.dead_lettered",
                        n.request_id,
                        {
                            "outbox_id": n.id,
                            "channel": n.channel,
                            "attempts": n.attempt,
                            "error": error[:500],
                            "event": n.payload.get("event"),
                        },
                    )
                    dead += 1
                    svc.observer.delivery(n.channel, "dead")
                else:
                    uow.outbox.retry(n.id, now + retry.delay(n.attempt), error)
                    retried += 1
                    svc.observer.delivery(n.channel, "failed")
            uow.commit()
    return DispatchResult(len(claimed), delivered, retried, dead)
