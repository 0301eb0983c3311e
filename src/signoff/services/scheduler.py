"""Durable deadlines: reminders, escalations, timeouts and grant expiry.

Every request stores ``next_due_at``, the next moment something must happen to it
without anyone acting. ``fire_due`` claims the requests due now, in small batches, and
lets the domain do what is due (``Request.tick``): state, audit events and outbox rows
are written in the batch's one transaction. A crash mid-batch rolls the whole batch
back, so nothing is lost and nothing fires twice; a second run finds nothing due
because every firing moves ``next_due_at`` forward.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from signoff.services.dependencies import Services
from signoff.services.recording import publish_changes, save_changes

log = logging.getLogger("signoff.scheduler")


@dataclass(frozen=True)
class SweepResult:
    claimed: int
    fired: int


def fire_due(svc: Services, limit: int = 100) -> SweepResult:
    """One batch: claim up to ``limit`` due requests and fire what is due on each."""
    fired: list[str] = []
    decided = []
    with svc.uow() as uow:
        now = svc.clock.now()
        ids = uow.requests.claim_due(now, limit)
        for rid in ids:
            request = uow.requests.get(rid, for_update=True)
            version = request.version
            events = request.tick(now)
            save_changes(svc, uow, now, request, version, events)
            fired += [e.type.value for e in events]
            if events and request.decided_at == now:
                decided.append(request)
        uow.commit()
    for ev_type in fired:
        svc.observer.fired(ev_type)
    for request in decided:
        svc.observer.decided(request)
    publish_changes(svc, uow)
    return SweepResult(len(ids), len(fired))


def sweep(svc: Services, limit: int = 100) -> int:
    """Fire everything due now, batch after batch; the number of events fired."""
    total = 0
    while True:
        result = fire_due(svc, limit)
        total += result.fired
        if result.claimed < limit:
            return total


class DeadlineWorker:
    """Fires due deadlines every ``interval`` seconds, and delivers due notifications:
    at once when woken (new outbox rows were committed), else every ``interval``.

    A wake-up is held for ``gather`` seconds so a burst of commits (an agent's calls, a
    pipeline's asks) is delivered in one round instead of one round a commit, each with
    its own transactions competing with the requests for the database and the
    interpreter. The deadline sweep keeps its own timer: a commit makes nothing due."""

    def __init__(
        self,
        svc: Services,
        interval: float = 1.0,
        limit: int = 100,
        dispatch: Callable[[], Any] | None = None,
        wake: threading.Event | None = None,
        every: Sequence[tuple[float, Callable[[], Any]]] = (),
        gather: float = 0.02,
    ) -> None:
        self.svc = svc
        self.interval = interval
        self.limit = limit
        self.dispatch = dispatch
        self.gather = gather
        self._stop = threading.Event()
        # Set by whoever wants a round now (``Services.wake_dispatcher`` after a commit).
        self._wake = wake if wake is not None else threading.Event()
        # Periodic work (audit checkpoints): (seconds, task), first run one period in.
        start = time.monotonic()
        self._every = list(every)
        self._next_run = [start + seconds for seconds, _ in every]
        self._thread = threading.Thread(target=self.run, name="signoff-deadlines", daemon=True)

    def wake(self) -> None:
        """Run the next round now (new outbox rows were committed)."""
        self._wake.set()

    def start(self) -> DeadlineWorker:
        self._thread.start()
        return self

    def run(self) -> None:
        next_sweep = 0.0
        while not self._stop.is_set():
            self._wake.clear()  # a commit from here on asks for another round
            if time.monotonic() >= next_sweep:
                try:
                    sweep(self.svc, self.limit)
                except Exception:  # keep going: the next sweep retries what failed
                    log.exception("deadline sweep failed")
                next_sweep = time.monotonic() + self.interval
            if self.dispatch is not None:
                try:
                    for _ in range(20):  # drain, but let deadlines have their turn
                        if not self.dispatch().claimed:
                            break
                except Exception:
                    log.exception("outbox dispatch failed")
            self._run_periodic()
            if self._wake.wait(max(0.0, next_sweep - time.monotonic())) and self.gather:
                self._stop.wait(self.gather)  # let the rest of a burst join this round

    def _run_periodic(self) -> None:
        now = time.monotonic()
        for i, (seconds, task) in enumerate(self._every):
            if now >= self._next_run[i]:
                self._next_run[i] = now + seconds
                try:
                    task()
                except Exception:
                    log.exception("periodic task failed")

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(10)
