"""The dispatcher is woken after a commit that queued something to deliver, and only
then: a transaction that only audits (a gateway's claim of a use) leaves it asleep
rather than setting it off to compete for the database."""

from __future__ import annotations

from datetime import UTC, datetime

from signoff.domain.actions import Action
from signoff.domain.events import ExecutionStarted
from signoff.services import requests as use_cases
from signoff.services.ports import FixedClock
from signoff.services.recording import publish_changes, record_changes
from tests.fakes import Recorder, Store, fake_services

START = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def test_only_a_commit_that_queued_a_notification_wakes_the_dispatcher() -> None:
    store, recorder = Store(), Recorder()
    svc = fake_services(store, FixedClock(START), recorder)
    frank = svc.directory.user("frank")
    r = use_cases.submit_request(
        svc, frank, Action("sql.execute", "pg/x", {"sql": "select 1"}), "", None, {}
    )
    assert len(store.outbox) == 1 and recorder.wakes == 1  # the requester is told
    assert r.grant is not None
    started = ExecutionStarted(
        actor="frank", execution_id="x-1", grant_id=r.grant.id, uses_left=0, read_only=True
    )
    with svc.uow() as uow:
        record_changes(svc, uow, START, r, [started])
        uow.commit()
    publish_changes(svc, uow)
    assert store.audit[-1].type == "execution.started"  # audited, announced live
    assert recorder.published == [r.id, r.id]
    assert len(store.outbox) == 1 and recorder.wakes == 1  # nothing to deliver
