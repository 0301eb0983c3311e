"""A request's state replayed from its audit events, and every way the stored state
can disagree with them (what `audit verify` reports)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from signoff.domain.actions import Action
from signoff.domain.audit import GENESIS_HASH, AuditEvent, chain_next
from signoff.domain.events import DomainEvent
from signoff.domain.replay import differences, replay
from signoff.domain.requests import Decision, Request, StagePlan, Status, Vote

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ACTION = Action("deploy", "prod/api", {"ref": "v1"})


def audited(events: list[DomainEvent], log: list[AuditEvent]) -> None:
    for ev in events:
        head = (log[-1].seq, log[-1].hash) if log else (0, GENESIS_HASH)
        log.append(chain_next(*head, T0, ev.actor, ev.type, "r1", ev.payload()))


def approved_and_used_once() -> tuple[Request, list[AuditEvent]]:
    r = Request(
        id="r1",
        requester="dave",
        action=ACTION,
        reason="",
        ticket=None,
        context={},
        policy_name="p",
        policy_set_digest="d",
        stages=[StagePlan("dba", frozenset({"bob", "carol"}), 2)],
        grant_ttl=timedelta(minutes=15),
        grant_uses=3,
        created_at=T0,
    )
    log: list[AuditEvent] = []
    audited(r.start(T0), log)
    audited(r.vote("bob", Decision.APPROVE, "", T0, lambda: "g1"), log)
    audited(r.vote("carol", Decision.APPROVE, "", T0, lambda: "g1"), log)
    audited(r.redeem(ACTION.digest, "dave", T0), log)
    return r, log


def test_a_request_agrees_with_its_history() -> None:
    r, log = approved_and_used_once()
    history = replay(log)
    assert (history.status, history.uses_total, history.uses_left) == ("approved", 3, 2)
    assert differences(r, history) == []


def test_every_edit_behind_the_logs_back_is_named() -> None:
    r, log = approved_and_used_once()
    history = replay(log)
    assert r.grant is not None
    edits = {
        "status": dataclasses.replace(r, status=Status.DENIED),
        "votes": dataclasses.replace(r, votes=r.votes[:1]),
        "extra vote": dataclasses.replace(
            r, votes=[*r.votes, Vote("erin", Decision.APPROVE, "", 0, T0)]
        ),
        "uses": dataclasses.replace(r, grant=dataclasses.replace(r.grant, uses_left=3)),
        "revocation": dataclasses.replace(r, grant=dataclasses.replace(r.grant, revoked_at=T0)),
        "no grant": dataclasses.replace(r, grant=None),
    }
    for what, edited in edits.items():
        assert differences(edited, history), what
    assert differences(r, replay([])) == [
        "request r1 has no 'request.submitted' event in the audit log"
    ]
