"""The typed message of an outbox row: its JSON (what signed webhooks deliver) keeps
its shape, and reads back as the same message."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from signoff.services.messages import (
    Details,
    GrantSummary,
    Message,
    RequestSummary,
    StageSummary,
    VoteSummary,
)

text = st.text(max_size=20)
messages = st.builds(
    Message,
    event=st.sampled_from(["request.submitted", "request.approved", "stage.escalated"]),
    audit_seq=st.integers(0, 10**9),
    status=st.sampled_from(["pending", "approved"]),
    actor=text,
    request=st.builds(
        RequestSummary,
        id=text,
        requester=text,
        type=text,
        target=text,
        params=st.dictionaries(text, text, max_size=3),
        reason=text,
        ticket=st.none() | text,
        policy=text,
        analysis=st.none() | text,
        grant=st.none() | st.builds(GrantSummary, text, st.integers(0, 5)),
        risk=st.none() | st.sampled_from(["low", "high"]),
        links=st.lists(text, max_size=2).map(tuple),
        labels=st.dictionaries(text, text, max_size=2),
        stage=st.none()
        | st.builds(
            StageSummary,
            number=st.integers(1, 3),
            of=st.integers(1, 3),
            name=text,
            approvers=st.lists(text, max_size=2).map(tuple),
            quorum=st.integers(1, 3),
            deadline_at=st.none() | text,
            then=st.none() | st.sampled_from(["escalates", "times out"]),
            escalate_to=st.lists(text, max_size=2).map(tuple),
            escalated=st.booleans(),
        ),
        votes=st.lists(
            st.builds(
                VoteSummary, text, st.sampled_from(["approved", "denied"]), text, st.integers(1, 3)
            ),
            max_size=2,
        ).map(tuple),
        awaiting=st.lists(text, max_size=2).map(tuple),
        still_needed=st.integers(0, 3),
        outcome=st.none() | text,
        executes=st.booleans(),
        commands=st.dictionaries(st.sampled_from(["show", "approve"]), text, max_size=2),
    ),
    details=st.builds(
        Details,
        by=st.none() | text,
        comment=st.none() | text,
        added=st.none() | st.lists(text, max_size=2).map(tuple),
        stage=st.none() | st.integers(0, 3),
    ),
    audience=st.sampled_from(["approvers", "requester", "watchers"]),
    to=st.lists(text, max_size=3).map(tuple),
    digest=st.booleans(),
)


@given(messages)
def test_a_message_reads_back_from_its_json(m: Message) -> None:
    assert Message.from_payload(m.payload()) == m


def test_the_json_keeps_the_shape_webhook_receivers_rely_on() -> None:
    m = Message(
        event="request.approved",
        audit_seq=7,
        status="approved",
        actor="bob",
        request=RequestSummary(
            "r1",
            "dave",
            "deploy",
            "prod/api",
            {"ref": "v1"},
            "fix",
            "OPS-1",
            "p",
            None,
            GrantSummary("2026-11-23T10:00:00+00:00", 1),
        ),
        details=Details(comment="ok"),
        audience="requester",
        to=("dave",),
    )
    assert m.payload() == {
        "event": "request.approved",
        "audit_seq": 7,
        "status": "approved",
        "actor": "bob",
        "details": {"comment": "ok"},
        "request": {
            "id": "r1",
            "requester": "dave",
            "action": {"type": "deploy", "target": "prod/api", "params": {"ref": "v1"}},
            "reason": "fix",
            "ticket": "OPS-1",
            "policy": "p",
            "analysis": None,
            "grant": {"expires_at": "2026-11-23T10:00:00+00:00", "uses_left": 1},
            # Added with the one rendering of a request's context (new keys only):
            "context": {"risk": None, "links": [], "labels": {}},
            "stage": None,
            "votes": [],
            "awaiting": [],
            "still_needed": 0,
            "outcome": None,
            "executes": False,
            "commands": {},
        },
        "audience": "requester",
        "to": ["dave"],
    }
    assert m.kind is not None and not m.asks_to_vote
