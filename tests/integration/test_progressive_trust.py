"""Progressive trust on both databases with a controlled clock: conditions on the
requester's record (history.approved, requester.first_seen) across their thresholds, an
incident taking trust back, the window letting it lapse; and the replay of the policy
against a newcomer's history, counting the asks it saves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from signoff.adapters.policy_files import load_policy_set
from signoff.bootstrap import App, build
from signoff.domain.actions import Action
from signoff.domain.requests import Decision, Status
from signoff.services import policy_replay
from signoff.services import requests as use_cases
from signoff.services.ports import FixedClock

from ..conftest import FIXTURES, make_settings

START = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def trust(database_url: str, tmp_path: Path) -> Iterator[tuple[App, FixedClock]]:
    clock = FixedClock(START)
    app = build(
        make_settings(database_url, tmp_path, policies_dir=FIXTURES / "onboarding"),
        clock=clock,
    )
    yield app, clock
    app.close()


def deploy(app: App, target: str, ref: str) -> Status:
    """frank asks to deploy: the status the policies gave it (PENDING: it needed a review,
    which a mentor, carol, then approves)."""
    svc = app.services
    r = use_cases.submit_request(
        svc, svc.directory.user("frank"), Action("deploy", target, {"ref": ref}), "", None, {}
    )
    if r.status is Status.PENDING:
        done = use_cases.cast_vote(svc, svc.directory.user("carol"), r.id, Decision.APPROVE, "")
        assert done.status is Status.APPROVED
    return r.status


def test_trust_grows_with_approved_deploys_and_lapses_after_the_window(trust) -> None:
    app, clock = trust
    # the first three staging deploys are reviewed, one a day
    for day in range(3):
        assert deploy(app, "staging/api", f"v{day}") is Status.PENDING
        clock.advance(days=1)
    # the fourth passes by policy, and so does another staging service's
    assert deploy(app, "staging/api", "v3") is Status.APPROVED
    assert deploy(app, "staging/web", "v3") is Status.APPROVED
    # production always needs review
    assert deploy(app, "prod/api", "v3") is Status.PENDING
    # ninety-one days later, the record has lapsed: a mentor looks again
    clock.advance(days=91)
    assert deploy(app, "staging/api", "v5") is Status.PENDING


def test_an_incident_takes_trust_back(trust) -> None:
    app, clock = trust
    svc = app.services
    frank, alice = svc.directory.user("frank"), svc.directory.user("alice")
    for day in range(3):
        assert deploy(app, "staging/api", f"v{day}") is Status.PENDING
        clock.advance(days=1)
    ask = Action("deploy", "staging/api", {"ref": "next"})
    assert use_cases.explain(svc, frank, ask, {}, None)[1].policy.name == (
        "trusted-staging-deploys"
    )
    # the last reviewed deploy broke staging: an admin revokes its grant
    with svc.uow(write=False) as uow:
        page = uow.requests.list(
            status=None, requester="frank", awaiting=None, cursor=None, limit=1
        )
    grant = page.items[0].grant
    assert grant is not None
    use_cases.revoke_grant(svc, alice, grant.id, "broke staging")
    # three approved, one with an incident: two without; a mentor looks again
    decision = use_cases.explain(svc, frank, ask, {}, None)[1]
    assert decision.policy.name == "newcomer-staging-deploys"
    assert deploy(app, "staging/api", "v3") is Status.PENDING
    # that fourth approval restores the three
    assert deploy(app, "staging/api", "v4") is Status.APPROVED


def test_first_seen_lets_old_hands_configure(trust) -> None:
    app, clock = trust
    svc = app.services
    frank = svc.directory.user("frank")
    change = Action("config.change", "app/cfg", {"k": "v"})
    first = use_cases.submit_request(svc, frank, change, "", None, {})
    assert first.status is Status.PENDING  # a newcomer: first seen now
    use_cases.cancel_request(svc, frank, first.id, "")
    clock.advance(days=29)
    assert use_cases.submit_request(svc, frank, change, "", None, {}).status is Status.PENDING
    clock.advance(days=1)
    assert use_cases.submit_request(svc, frank, change, "", None, {}).status is Status.APPROVED


def test_the_replay_of_onboarding_counts_the_asks_it_saves(
    database_url: str, tmp_path: Path
) -> None:
    # history under a set where a mentor reviews every staging deploy: six, one a day
    before = tmp_path / "before"
    before.mkdir()
    text = (FIXTURES / "onboarding" / "10-onboarding.yaml").read_text()
    start = text.index("  - name: trusted-staging-deploys")
    end = text.index("  - name: newcomer-staging-deploys")
    (before / "p.yaml").write_text(text[:start] + text[end:])
    clock = FixedClock(START)
    app = build(make_settings(database_url, tmp_path, policies_dir=before), clock=clock)
    try:
        svc = app.services
        for day in range(6):
            assert deploy(app, "staging/api", f"v{day}") is Status.PENDING
            clock.advance(days=1)
        onboarding = load_policy_set(FIXTURES / "onboarding", svc.directory)
        alice = svc.directory.user("alice")
        result = policy_replay.replay(svc, alice, onboarding, START, clock.now())
    finally:
        app.close()
    assert result.requests == 6
    # the fourth, fifth and sixth come after three approved: allowed, each sparing the
    # two mentors asked (carol and dave of sre; frank never reviews his own)
    assert dict(result.outcomes) == {"review -> allow": 3}
    assert (result.asks_spared, result.widening) == (3 * 2, 3)
