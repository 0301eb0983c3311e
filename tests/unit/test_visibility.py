"""Who may read a request: a rule of the domain (``Request.may_read``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signoff.domain.actions import Action
from signoff.domain.requests import Decision, Request, StagePlan

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def request(**overrides: object) -> Request:
    values: dict[str, object] = {
        "id": "r1",
        "requester": "dave",
        "action": Action("deploy", "prod/api", {}),
        "reason": "",
        "ticket": None,
        "context": {},
        "policy_name": "p",
        "policy_set_digest": "d",
        "stages": [
            StagePlan(
                "dba",
                frozenset({"bob"}),
                1,
                timeout=timedelta(minutes=5),
                escalate_to=frozenset({"carol"}),
            ),
            StagePlan("security", frozenset({"erin"}), 1),
        ],
        "grant_ttl": timedelta(minutes=5),
        "grant_uses": 1,
        "created_at": NOW,
        "executors": frozenset({"ci"}),
    }
    values.update(overrides)
    return Request(**values)  # type: ignore[arg-type]


def test_requester_approvers_of_every_stage_executors_and_admins_read() -> None:
    r = request()
    r.start(NOW)
    for person in ("dave", "bob", "erin", "ci"):
        assert r.may_read(person, is_admin=False), person
    assert r.may_read("zoe", is_admin=True)
    assert not r.may_read("zoe", is_admin=False)


def test_escalation_approvers_read_once_they_are_asked() -> None:
    r = request()
    r.start(NOW)
    assert not r.may_read("carol", is_admin=False)
    assert r.tick(NOW + timedelta(minutes=5))  # the stage escalates to carol
    assert r.may_read("carol", is_admin=False)
    r.vote("carol", Decision.APPROVE, "", NOW + timedelta(minutes=6), lambda: "g1")
    assert r.current_stage == 1
    assert r.may_read("carol", is_admin=False)  # she voted: she stays in the picture
