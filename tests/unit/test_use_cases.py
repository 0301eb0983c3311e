"""Service rules on an in-memory unit of work (tests/fakes.py): what a use case stores,
audits, announces and publishes. The database's own part (locks, concurrency, the
chain on disk) is tested against SQLite and PostgreSQL in tests/integration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from signoff.domain.actions import Action
from signoff.domain.audit import verify_chain
from signoff.domain.errors import GrantRefused, InvalidInput, SelfApproval
from signoff.domain.requests import Decision, Status
from signoff.services import requests as use_cases
from signoff.services.ports import FixedClock
from tests.fakes import FIXTURES, Recorder, Store, fake_services

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
READ = Action("sql.execute", "pg/x", {"sql": "select 1"})
WRITE = Action("sql.execute", "pg/prod", {"sql": "UPDATE t SET x = 1 WHERE id = 1"})


@pytest.fixture
def world():
    store, clock, recorder = Store(), FixedClock(START), Recorder()
    return store, clock, recorder, fake_services(store, clock, recorder)


def types(store: Store, rid: str) -> list[str]:
    return [e.type for e in store.audit if e.request_id == rid]


def test_an_allowed_action_is_granted_and_audited_and_the_answer_is_not_repeated(
    world,
) -> None:
    store, _, recorder, svc = world
    frank = svc.directory.user("frank")
    r = use_cases.submit_request(svc, frank, READ, "", None, {})
    assert r.status is Status.APPROVED and r.grant is not None and r.grant.uses_left == 1
    assert types(store, r.id) == ["request.submitted", "request.approved", "grant.issued"]
    # frank reads the approval in the answer to his call: no message tells him again,
    # and the dispatcher is not woken for nothing (live streams still are)
    assert store.outbox == []
    assert recorder.published == [r.id] and recorder.wakes == 0
    assert verify_chain(iter(store.audit), (store.audit[-1].seq, store.audit[-1].hash)).ok


def test_a_feed_hears_of_a_decision_the_requester_read_in_the_answer() -> None:
    store, clock, recorder = Store(), FixedClock(START), Recorder()
    svc = fake_services(
        store, clock, recorder, channels=("log", "siem"), feed_channels=frozenset({"siem"})
    )
    r = use_cases.submit_request(svc, svc.directory.user("frank"), READ, "", None, {})
    [row] = store.outbox  # the webhook feed, not the log
    assert (row.topic, row.payload["audience"], row.payload["to"]) == (
        "siem",
        "requester",
        ["frank"],
    )
    assert row.payload["event"] == "request.approved" and row.payload["request"]["id"] == r.id
    # a later change is news to the requester again, on every channel
    use_cases.cancel_request(svc, svc.directory.user("frank"), r.id, "not needed")
    assert sorted(o.topic for o in store.outbox[1:]) == ["log", "siem"]


def test_a_reviewed_action_asks_the_approvers_and_an_identical_ask_is_folded(world) -> None:
    store, _, _, svc = world
    dave = svc.directory.user("dave")
    r, folded = use_cases.submit_or_fold(svc, dave, WRITE, "fix", "OPS-1", {})
    assert not folded and r.status is Status.PENDING
    [ask] = store.outbox
    assert ask.payload["audience"] == "approvers" and ask.payload["to"] == ["bob", "carol"]
    again, folded = use_cases.submit_or_fold(svc, dave, WRITE, "still needed", "OPS-1", {})
    assert folded and again.id == r.id and again.fold_count == 1
    assert len(store.outbox) == 1  # nobody is asked twice
    assert types(store, r.id) == ["request.submitted", "request.folded"]


def test_a_refused_submission_stores_nothing(world) -> None:
    store, _, recorder, svc = world
    dave = svc.directory.user("dave")
    with pytest.raises(InvalidInput, match="requires a reason"):
        use_cases.submit_request(svc, dave, WRITE, "  ", "OPS-1", {})
    assert store.requests == {} and store.audit == [] and store.outbox == []
    assert recorder.published == []


def test_votes_reach_quorum_and_publish_after_commit(world) -> None:
    store, _, recorder, svc = world
    dave, bob, carol = (svc.directory.user(u) for u in ("dave", "bob", "carol"))
    r = use_cases.submit_request(svc, dave, WRITE, "fix", "OPS-1", {})
    with pytest.raises(SelfApproval):
        use_cases.cast_vote(svc, dave, r.id, Decision.APPROVE, "")
    assert types(store, r.id) == ["request.submitted"]  # the refusal changed nothing
    use_cases.cast_vote(svc, bob, r.id, Decision.APPROVE, "ok")
    done = use_cases.cast_vote(svc, carol, r.id, Decision.APPROVE, "")
    assert done.status is Status.APPROVED and store.requests[r.id].status is Status.APPROVED
    assert types(store, r.id)[-3:] == ["vote.cast", "request.approved", "grant.issued"]
    news = [row for row in store.outbox if row.payload["event"] == "request.approved"]
    assert [row.payload["to"] for row in news] == [["dave"]]
    assert recorder.published.count(r.id) == 3


def test_a_grant_is_used_once_and_a_refusal_is_audited(world) -> None:
    store, _, _, svc = world
    frank = svc.directory.user("frank")
    r = use_cases.submit_request(svc, frank, READ, "", None, {})
    token = svc.signer.issue(r)
    assert use_cases.redeem_grant(svc, frank, token, READ).uses_left == 0
    assert store.requests[r.id].status is Status.EXECUTED
    with pytest.raises(GrantRefused) as info:
        use_cases.redeem_grant(svc, frank, token, READ)
    assert info.value.reason == "used_up"
    refused = [e for e in store.audit if e.type == "grant.refused"]
    assert [e.payload_data()["reason"] for e in refused] == ["used_up"]


POLICIES = """
policies:
  - name: loud
    match: {type: deploy}
    outcome: review
    notify: [webhook:audit, email]
    review:
      stages: [{approvers: {groups: [dba]}, quorum: 1}]
  - name: batched
    match: {type: config.change}
    outcome: review
    notify_mode: digest
    every: 30m
    review:
      stages: [{approvers: {groups: [dba]}, quorum: 1}]
default: {outcome: deny}
"""


@pytest.fixture
def routed(tmp_path: Path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text(POLICIES)
    users = (
        (FIXTURES / "users.yaml")
        .read_text()
        .replace("{name: frank}", "{name: frank, notify: [email]}")
    )
    (tmp_path / "users.yaml").write_text(users)
    store, clock = Store(), FixedClock(START + timedelta(minutes=5))
    svc = fake_services(
        store,
        clock,
        policies=tmp_path / "policies",
        users=tmp_path / "users.yaml",
        channels=("log", "email", "webhook:audit"),
        personal_channels=frozenset({"email"}),
    )
    return store, svc


def test_a_policy_names_its_channels_and_a_requester_their_own(routed) -> None:
    store, svc = routed
    frank, bob = svc.directory.user("frank"), svc.directory.user("bob")
    r = use_cases.submit_request(svc, frank, Action("deploy", "prod/web", {}), "", None, {})
    assert sorted(row.topic for row in store.outbox) == ["email", "webhook:audit"]
    store.outbox.clear()
    use_cases.cast_vote(svc, bob, r.id, Decision.APPROVE, "")
    assert [(row.topic, row.payload["to"]) for row in store.outbox] == [("email", ["frank"])]


def test_a_digest_policy_holds_approver_rows_per_person_to_the_window_end(routed) -> None:
    store, svc = routed
    frank, bob = svc.directory.user("frank"), svc.directory.user("bob")
    r = use_cases.submit_request(svc, frank, Action("config.change", "x", {}), "", None, {})
    asks = sorted((row.topic, tuple(row.payload["to"]), row.not_before) for row in store.outbox)
    slot = START + timedelta(minutes=30)  # windows are aligned on the clock
    assert asks == [
        ("email", ("bob",), slot),
        ("email", ("carol",), slot),
        ("log", ("bob", "carol"), slot),
        ("webhook:audit", ("bob", "carol"), slot),
    ]
    store.outbox.clear()
    use_cases.cast_vote(svc, bob, r.id, Decision.APPROVE, "")
    [news] = store.outbox  # the requester's news is never held
    assert news.payload["audience"] == "requester" and news.not_before is None
