"""The use cases behind the admin and token pages, on the in-memory unit of work: who
may make and revoke API tokens, that a revoked token stops at once on this process
(its cache entry too), and that a dead letter is requeued by admins only, audited."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from signoff.domain.actions import Action
from signoff.domain.audit import verify_chain
from signoff.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from signoff.services import auth
from signoff.services import requests as use_cases
from signoff.services.dispatcher import requeue_dead_letter
from signoff.services.ports import FixedClock
from tests.fakes import Recorder, Store, fake_services

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def world():
    store, clock, recorder = Store(), FixedClock(START), Recorder()
    return store, recorder, fake_services(store, clock, recorder)


def test_anyone_makes_their_own_token_admins_anyones(world) -> None:
    store, _, svc = world
    bob, alice = svc.directory.user("bob"), svc.directory.user("alice")
    auth.create_token(svc, "bob", "laptop", by=bob)
    with pytest.raises(Forbidden, match="only an admin may create an API token"):
        auth.create_token(svc, "dave", "sneaky", by=bob)
    auth.create_token(svc, "dave", "ci", by=alice)
    assert sorted((t.user, t.label) for t in store.tokens.values()) == [
        ("bob", "laptop"),
        ("dave", "ci"),
    ]
    assert [(e.actor, e.payload_data()["user"]) for e in store.audit] == [
        ("bob", "bob"),
        ("alice", "dave"),
    ]
    with pytest.raises(InvalidInput, match="at most 200"):
        auth.create_token(svc, "bob", "x" * 201, by=bob)
    with pytest.raises(InvalidInput, match="NUL"):
        auth.create_token(svc, "bob", "a\x00b", by=bob)
    assert len(store.tokens) == 2


def test_a_revoked_token_stops_at_once_though_it_was_cached(world) -> None:
    store, _, svc = world
    bob = svc.directory.user("bob")
    token = auth.create_token(svc, "bob", "laptop", by=bob)
    assert auth.authenticate(svc, token).name == "bob"  # now cached
    [made] = store.tokens.values()
    auth.revoke_token(svc, bob, made.id)
    assert auth.authenticate_cached(svc, token) is None
    with pytest.raises(Unauthenticated):
        auth.authenticate(svc, token)
    assert store.audit[-1].type == "token.revoked"
    assert store.audit[-1].payload_data() == {"token_id": made.id, "user": "bob", "label": "laptop"}
    with pytest.raises(Conflict, match="revoked already"):
        auth.revoke_token(svc, bob, made.id)


def test_only_the_owner_or_an_admin_revokes_a_token(world) -> None:
    store, _, svc = world
    token = auth.create_token(svc, "dave", "ci")
    [made] = store.tokens.values()
    with pytest.raises(NotFound):  # to bob, dave's token does not exist
        auth.revoke_token(svc, svc.directory.user("bob"), made.id)
    assert auth.authenticate(svc, token).name == "dave"
    auth.revoke_token(svc, svc.directory.user("alice"), made.id)
    assert store.audit[-1].actor == "alice"
    with pytest.raises(NotFound):
        auth.revoke_token(svc, svc.directory.user("alice"), "no-such-token")


def test_a_dead_letter_is_requeued_by_an_admin_and_audited(world) -> None:
    store, recorder, svc = world
    frank = svc.directory.user("frank")
    write = Action("sql.execute", "pg/prod", {"sql": "UPDATE t SET x = 1 WHERE id = 1"})
    r = use_cases.submit_request(svc, frank, write, "fix", "OPS-1", {})
    [row] = store.outbox  # the ask to the approvers
    store.outbox[0] = replace(row, status="dead", attempts=8)
    wakes = recorder.wakes
    with pytest.raises(Forbidden, match="only an admin may retry"):
        requeue_dead_letter(svc, frank, 1)
    assert store.outbox[0].status == "dead"
    requeue_dead_letter(svc, svc.directory.user("alice"), 1)
    assert (store.outbox[0].status, store.outbox[0].attempts) == ("pending", 0)
    assert recorder.wakes == wakes + 1  # the dispatcher is told at once
    last = store.audit[-1]
    assert (last.type, last.actor, last.request_id) == ("outbox.requeued", "alice", r.id)
    assert last.payload_data() == {
        "outbox_id": 1,
        "channel": row.topic,
        "attempts": 8,
        "event": "request.submitted",
    }
    assert verify_chain(store.audit).ok
    with pytest.raises(Conflict, match="not a dead letter"):
        requeue_dead_letter(svc, svc.directory.user("alice"), 1)
    with pytest.raises(Conflict):
        requeue_dead_letter(svc, svc.directory.user("alice"), 99)
