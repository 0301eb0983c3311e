"""Domain events: every name defined once and produced by one class, and the audit
payloads (read by the SSE stream, webhooks and ``signoff show``) exactly as recorded."""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signoff.adapters.channels.messages import HEADLINES
from signoff.domain.actions import Action
from signoff.domain.events import (
    AuditedEvent,
    DomainEvent,
    EventType,
    ExecutionFinished,
    ExecutionRefusal,
    ExecutionResult,
    ExecutionStarted,
    GrantExpiring,
    GrantIssued,
    GrantRedeemed,
    GrantRefusal,
    GrantRevoked,
    GrantUseReturned,
    OutboxDeadLettered,
    OutboxRequeued,
    PasskeyAdded,
    PasskeyRemoved,
    RequestFolded,
    RequestMoved,
    RequestReminded,
    RequestSubmitted,
    StageAdvanced,
    StageEscalated,
    TokenCreated,
    TokenRevoked,
    UserSignedOut,
    VoteCast,
)
from signoff.domain.requests import TRANSITIONS, Decision, StagePlan, Status
from signoff.services import notify

T = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ACTION = Action("sql.execute", "pg/prod", {"sql": "UPDATE t SET x = 1"})
STAGE = StagePlan("leads", frozenset({"ben", "ann"}), 1, timedelta(minutes=10))
RESULT = ExecutionResult(execution_id="e1", ok=False, ran=True, summary="boom", output_digest="d")

# One example of every event, with the payload the audit log has always recorded for it.
EXAMPLES: list[tuple[AuditedEvent, dict[str, Any]]] = [
    (
        RequestSubmitted(
            actor="req",
            action=ACTION,
            reason="why",
            ticket=None,
            policy="p",
            policy_set_digest="psd",
            stages=(STAGE,),
        ),
        {
            "action": ACTION.as_dict(),
            "action_digest": ACTION.digest,
            "reason": "why",
            "ticket": None,
            "policy": "p",
            "policy_set_digest": "psd",
            "stages": [STAGE.as_dict()],
        },
    ),
    (
        VoteCast(actor="ann", decision=Decision.APPROVE, comment="ok", stage=0),
        {"decision": "approve", "comment": "ok", "stage": 0},
    ),
    (StageAdvanced(actor="ann", stage=1, name="dbas"), {"stage": 1, "name": "dbas"}),
    (
        StageEscalated(actor="scheduler", stage=0, name="leads", added=("cat",), still_needed=1),
        {"stage": 0, "name": "leads", "added": ["cat"], "still_needed": 1},
    ),
    (
        RequestReminded(actor="scheduler", stage=0, reminder=2, to=("ann", "ben")),
        {"stage": 0, "reminder": 2, "to": ["ann", "ben"]},
    ),
    (RequestFolded(actor="req", count=2, reason="again"), {"count": 2, "reason": "again"}),
    (
        GrantIssued(actor="ann", grant_id="g1", expires_at=T, uses=2, action_digest="ad"),
        {"grant_id": "g1", "expires_at": T.isoformat(), "uses": 2, "action_digest": "ad"},
    ),
    (GrantRevoked(actor="root", grant_id="g1"), {"grant_id": "g1"}),
    (GrantRedeemed(actor="req", grant_id="g1", uses_left=0), {"grant_id": "g1", "uses_left": 0}),
    (
        GrantExpiring(actor="scheduler", grant_id="g1", expires_at=T, uses_left=1),
        {"grant_id": "g1", "expires_at": T.isoformat(), "uses_left": 1},
    ),
    (
        GrantUseReturned(actor="req", grant_id="g1", uses_left=1),
        {"grant_id": "g1", "uses_left": 1},
    ),
    (
        ExecutionStarted(
            actor="req", execution_id="e1", grant_id="g1", uses_left=0, read_only=True
        ),
        {"execution_id": "e1", "grant_id": "g1", "uses_left": 0, "read_only": True},
    ),
    (
        ExecutionFinished(actor="req", result=RESULT),
        {"execution_id": "e1", "ok": False, "ran": True, "summary": "boom", "output_digest": "d"},
    ),
    (
        RequestMoved(actor="ann", from_status=Status.PENDING, to_status=Status.APPROVED),
        {"from": "pending", "to": "approved"},
    ),
    (
        RequestMoved(
            actor="ann", from_status=Status.PENDING, to_status=Status.DENIED, by="ann", comment=""
        ),
        {"from": "pending", "to": "denied", "by": "ann", "comment": ""},
    ),
    (
        RequestMoved(
            actor="scheduler", from_status=Status.PENDING, to_status=Status.TIMED_OUT, comment="x"
        ),
        {"from": "pending", "to": "timed_out", "comment": "x"},
    ),
    (
        RequestMoved(
            actor="req", from_status=Status.APPROVED, to_status=Status.EXECUTED, grant_id="g1"
        ),
        {"from": "approved", "to": "executed", "grant_id": "g1"},
    ),
    (
        RequestMoved(
            actor="req", from_status=Status.APPROVED, to_status=Status.FAILED, result=RESULT
        ),
        {"from": "approved", "to": "failed", **RESULT.as_dict()},
    ),
    (
        RequestMoved(
            actor="scheduler",
            from_status=Status.APPROVED,
            to_status=Status.EXPIRED,
            grant_id="g1",
            uses_left=1,
        ),
        {"from": "approved", "to": "expired", "grant_id": "g1", "uses_left": 1},
    ),
    (
        GrantRefusal(actor="req", grant_id="g1", reason="used_up", action_digest="ad"),
        {"grant_id": "g1", "reason": "used_up", "action_digest": "ad"},
    ),
    (
        ExecutionRefusal(actor="mallory", reason="forbidden", status=Status.APPROVED),
        {"reason": "forbidden", "status": "approved"},
    ),
    (TokenCreated(actor="admin", user="ann", label="ci"), {"user": "ann", "label": "ci"}),
    (
        TokenRevoked(actor="ann", token_id="t1", user="ann", label="ci"),
        {"token_id": "t1", "user": "ann", "label": "ci"},
    ),
    (
        UserSignedOut(actor="root", user="ann", sessions=2, tokens=("t1", "t2")),
        {"user": "ann", "sessions": 2, "tokens": ["t1", "t2"]},
    ),
    (
        PasskeyAdded(actor="bob", user="bob", name="laptop", credential="AbC123"),
        {"user": "bob", "name": "laptop", "credential": "AbC123"},
    ),
    (
        PasskeyRemoved(actor="bob", user="bob", name="laptop", credential="AbC123"),
        {"user": "bob", "name": "laptop", "credential": "AbC123"},
    ),
    (
        OutboxDeadLettered(
            actor="dispatcher",
            outbox_id=7,
            channel="slack",
            attempts=5,
            error="x" * 600,
            event="request.approved",
        ),
        {
            "outbox_id": 7,
            "channel": "slack",
            "attempts": 5,
            "error": "x" * 500,
            "event": "request.approved",
        },
    ),
    (
        OutboxRequeued(
            actor="root", outbox_id=7, channel="slack", attempts=5, event="request.approved"
        ),
        {"outbox_id": 7, "channel": "slack", "attempts": 5, "event": "request.approved"},
    ),
]

EVENT_CLASSES = typing.get_args(AuditedEvent)
MOVES = frozenset().union(*TRANSITIONS.values())


def test_every_event_type_is_produced_by_exactly_one_class() -> None:
    producers: dict[EventType, list[str]] = {}
    for cls in EVENT_CLASSES:
        if cls is RequestMoved:
            for status in MOVES:
                producers.setdefault(EventType.moved_to(status), []).append(cls.__name__)
        else:
            producers.setdefault(cls.type, []).append(cls.__name__)
    assert set(producers) == set(EventType)
    assert {t: names for t, names in producers.items() if len(names) != 1} == {}


def test_a_move_is_typed_by_its_target_status() -> None:
    for status in MOVES:
        moved = RequestMoved(actor="a", from_status=Status.PENDING, to_status=status)
        assert moved.type == f"request.{status.value}"
        assert moved.payload()["to"] == status.value


def test_every_event_class_has_an_example() -> None:
    assert {type(ev) for ev, _ in EXAMPLES} == set(EVENT_CLASSES)


@pytest.mark.parametrize(("event", "expected"), EXAMPLES, ids=lambda v: getattr(v, "type", ""))
def test_payload_is_the_recorded_audit_payload(
    event: AuditedEvent, expected: dict[str, Any]
) -> None:
    payload = event.payload()
    assert payload == expected
    assert list(payload) == list(expected)  # and in the same key order
    assert json.loads(json.dumps(payload)) == payload


# What an outbox row's "details" kept of an event's payload before events were typed.
DETAIL_KEYS = (
    "by",
    "comment",
    "expires_at",
    "uses_left",
    "name",
    "stage",
    "added",
    "reminder",
    "summary",
)
DOMAIN_EXAMPLES = [ev for ev, _ in EXAMPLES if isinstance(ev, typing.get_args(DomainEvent))]


@pytest.mark.parametrize("event", DOMAIN_EXAMPLES, ids=lambda v: str(v.type))
def test_message_details_are_what_the_payload_said(event: DomainEvent) -> None:
    payload = event.payload()
    assert notify._details(event) == {k: payload[k] for k in DETAIL_KEYS if k in payload}


def test_every_notified_event_has_a_headline() -> None:
    assert set(HEADLINES) == notify.NOTIFY_EVENTS
