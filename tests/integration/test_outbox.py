"""The outbox dispatcher against a real webhook receiver on loopback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from signoff.adapters.channels.webhook import verify_signature
from signoff.bootstrap import build
from signoff.domain.actions import Action
from signoff.services import requests as use_cases
from signoff.services.ports import FixedClock

from ..conftest import HttpRecorder, make_settings

SECRET = "s3cret-for-tests"


def make_app(database_url: str, tmp_path: Path, url: str, clock: FixedClock, attempts: int = 4):
    return build(
        make_settings(
            database_url,
            tmp_path,
            channels="log,webhook:siem",
            webhooks={"siem": {"url": url, "secret": SECRET}},
            outbox_max_attempts=attempts,
            outbox_backoff_seconds=10,
        ),
        clock=clock,
    )


def drain(app, clock: FixedClock, rounds: int) -> None:
    for _ in range(rounds):
        app.dispatch()
        clock.advance(minutes=10)


@pytest.mark.parametrize("receiver", [3], indirect=True)
def test_a_failing_receiver_gets_the_event_once_it_recovers(
    database_url: str, tmp_path: Path, receiver: HttpRecorder
) -> None:
    clock = FixedClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    app = make_app(database_url, tmp_path, f"{receiver.url}/hook", clock, attempts=6)
    try:
        svc = app.services
        r = use_cases.submit_request(
            svc, svc.directory.user("frank"), Action("sql.drop", "pg/prod", {}), "", None, {}
        )
        first = app.dispatch()
        # frank read the denial in his answer: the log does not repeat it, but the
        # webhook is a feed for another system (here failing with 503)
        assert (first.claimed, first.delivered, first.retried) == (1, 0, 1)
        again = app.dispatch()
        assert again.claimed == 0  # the retry waits for its backoff (10s, then 20s, ...)
        drain(app, clock, 5)
        assert len(receiver.calls) == 4
        assert all(verify_signature(SECRET, c["headers"], c["raw"]) for c in receiver.calls)
        ids = {c["headers"]["signoff-event-id"] for c in receiver.calls}
        assert len(ids) == 1  # the same event id on every retry
        body = receiver.calls[-1]["body"]
        assert body["event"] == "request.denied" and body["request"]["id"] == r.id
        assert body["to"] == ["frank"]
        with svc.uow(write=False) as uow:
            assert uow.outbox.counts() == {"delivered": 1}
    finally:
        app.close()


@pytest.mark.parametrize("receiver", [1000], indirect=True)
def test_a_receiver_that_never_recovers_is_dead_lettered_visibly(
    database_url: str, tmp_path: Path, receiver: HttpRecorder
) -> None:
    clock = FixedClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    app = make_app(database_url, tmp_path, f"{receiver.url}/hook", clock, attempts=3)
    try:
        svc = app.services
        r = use_cases.submit_request(
            svc, svc.directory.user("frank"), Action("sql.drop", "pg/prod", {}), "", None, {}
        )
        drain(app, clock, 6)
        assert len(receiver.calls) == 3
        with svc.uow(write=False) as uow:
            dead = uow.outbox.rows("dead", 10)
            events = [e.type for e in uow.audit.events(request_id=r.id)]
        assert len(dead) == 1 and dead[0]["topic"] == "webhook:siem"
        assert dead[0]["last_error"].startswith("HTTP 503")
        assert events[-1] == "outbox.dead_lettered"
    finally:
        app.close()


def test_forged_or_stale_signatures_are_refused() -> None:
    from signoff.adapters.channels.webhook import sign

    body = b'{"id":1}'
    headers = {"Signoff-Timestamp": "1000", "Signoff-Signature": sign(SECRET, 1000, body)}
    assert verify_signature(SECRET, headers, body, now=1000)
    assert not verify_signature("other", headers, body, now=1000)
    assert not verify_signature(SECRET, headers, b'{"id":2}', now=1000)
    assert not verify_signature(SECRET, headers, body, now=1000 + 301)
    assert not verify_signature(SECRET, {}, body, now=1000)


def test_an_unknown_channel_is_a_clear_configuration_error(
    database_url: str, tmp_path: Path
) -> None:
    from signoff.domain.errors import InvalidInput

    with pytest.raises(InvalidInput) as info:
        build(make_settings(database_url, tmp_path, channels="log,webhook:nope"))
    assert "unknown channel 'webhook:nope'" in info.value.detail


class Recorder:
    """A channel double that records what it was asked to send."""

    name = "log"
    keeps_message_updated = False

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, notification) -> None:
        self.sent.append(notification.payload["event"])


def test_nobody_is_asked_about_a_request_decided_before_delivery(
    database_url: str, tmp_path: Path
) -> None:
    app = build(make_settings(database_url, tmp_path))
    recorder = Recorder()
    app.channels["log"] = recorder
    try:
        svc = app.services
        r = use_cases.submit_request(
            svc, svc.directory.user("frank"), Action("deploy", "prod/web", {}), "", None, {}
        )
        use_cases.cancel_request(svc, svc.directory.user("frank"), r.id, "never mind")
        result = app.dispatch()
        assert result.delivered == 2  # both rows are done with...
        assert recorder.sent == ["request.cancelled"]  # ...but only the cancel was sent
    finally:
        app.close()


def test_one_round_asks_about_the_pending_requests_and_not_the_decided_ones(
    database_url: str, tmp_path: Path
) -> None:
    """The round reads all its requests' states at once: each row is judged by its own
    request's, and only those sent count as people notified."""
    import sqlalchemy as sa

    from signoff.adapters.db import tables as t

    app = build(make_settings(database_url, tmp_path))
    recorder = Recorder()
    app.channels["log"] = recorder
    try:
        svc = app.services
        frank = svc.directory.user("frank")
        asks = [
            use_cases.submit_request(
                svc, frank, Action("deploy", f"prod/web-{i}", {}), "", None, {}
            )
            for i in range(4)
        ]
        for r in asks[::2]:
            use_cases.cancel_request(svc, frank, r.id, "never mind")
        result = app.dispatch()
        assert result.delivered == 6  # every row is done with...
        assert sorted(recorder.sent) == ["request.cancelled"] * 2 + ["request.submitted"] * 2
        with app.engine.connect() as conn:
            notified = set(
                conn.execute(
                    sa.select(t.flow_events.c.request_id).where(t.flow_events.c.kind == "notified")
                ).scalars()
            )
            statuses = set(conn.execute(sa.select(t.outbox.c.status)).scalars())
        assert notified == {r.id for r in asks[1::2]}  # only the pending ones were asked
        assert statuses == {"delivered"}
    finally:
        app.close()
