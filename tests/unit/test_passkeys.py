"""Passkey stages (``approve_with: passkey``): the policy key, and the rule the vote use
case enforces on every path: no fresh assertion bound to this vote, no vote. WebAuthn
itself is a fake here (the browser test uses Chromium's virtual authenticator)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from signoff.adapters.channels.messages import PASSKEY_NEEDED, context_rows
from signoff.adapters.directory_file import load_directory
from signoff.adapters.policy_files import load_policy_set
from signoff.domain.actions import Action
from signoff.domain.errors import PasskeyRefused, PolicyError, StepUpRequired
from signoff.domain.events import RequestSubmitted
from signoff.domain.requests import Decision, Status
from signoff.services import notify, passkeys
from signoff.services import requests as use_cases
from signoff.services.messages import Message, summarize
from signoff.services.ports import FixedClock
from tests.fakes import FIXTURES, Recorder, Store, fake_services

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DEPLOY = Action("deploy", "prod/api", {"version": "1.2.3"})
OTHER = Action("deploy", "prod/web", {"version": "4.5.6"})


class FakeWebAuthn:
    """Answers are JSON ``{"challenge": ..., "raw_id": ...}``, "signed" when
    ``"ok": true``; each use counts one more signature."""

    def registration_options(
        self, user: str, challenge: bytes, exclude: list[bytes]
    ) -> dict[str, Any]:
        return {"challenge": challenge.hex()}

    def verify_registration(self, credential: str, challenge: bytes) -> tuple[bytes, bytes, int]:
        return json.loads(credential)["raw_id"].encode(), b"public-key", 0

    def authentication_options(self, challenge: bytes, allow: list[bytes]) -> dict[str, Any]:
        return {"allow": [c.decode() for c in allow]}

    def verify_authentication(
        self, credential: str, challenge: bytes, public_key: bytes, sign_count: int
    ) -> int:
        if not json.loads(credential).get("ok"):
            raise PasskeyRefused("invalid", "the passkey's answer does not verify")
        return sign_count + 1

    def challenge_of(self, credential: str) -> tuple[str, bytes]:
        answer = json.loads(credential)
        return answer["challenge"], answer["raw_id"].encode()


def answer(store: Store, raw_id: str = "bob-key", ok: bool = True) -> str:
    """The browser's answer to the newest challenge given out."""
    newest = list(store.challenges.values())[-1]
    return json.dumps({"challenge": newest.challenge, "raw_id": raw_id, "ok": ok})


@pytest.fixture
def world():
    store, clock = Store(), FixedClock(START)
    svc = fake_services(
        store,
        clock,
        Recorder(),
        policies=FIXTURES / "passkeys",
        webauthn=FakeWebAuthn(),
        public_url="https://signoff.example.com",
    )
    return store, clock, svc


def enrolled(svc, store: Store, person: str = "bob") -> None:
    user = svc.directory.user(person)
    passkeys.enrollment_options(svc, user, svc.clock.now())
    newest = list(store.challenges.values())[-1]
    credential = json.dumps({"challenge": newest.challenge, "raw_id": f"{person}-key"})
    passkeys.enroll(svc, user, "  my   laptop ", credential, svc.clock.now())


# ----- the policy key ------------------------------------------------------------------


def test_a_stage_may_ask_for_a_passkey_and_the_request_keeps_it() -> None:
    directory = load_directory(FIXTURES / "users.yaml")
    policy = load_policy_set(FIXTURES / "passkeys", directory).policies[1]
    assert policy.stages[0].approve_with == "passkey"
    [plain] = load_policy_set(FIXTURES / "staged", directory).policies
    assert [s.approve_with for s in plain.stages] == [None, None]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "approve_with: pasky",
            "6:53: policies.0.review.stages.0.approve_with: Input should be 'passkey'",
        ),
        (
            "aprove_with: passkey",
            "6:39: unknown key 'aprove_with' at policies.0.review.stages.0.aprove_with; "
            "did you mean 'approve_with'?",
        ),
    ],
)
def test_a_wrong_approve_with_is_located(tmp_path: Path, line: str, expected: str) -> None:
    (tmp_path / "p.yaml").write_text(
        "policies:\n  - name: p\n    outcome: review\n    review:\n      stages:\n"
        f"        - {{approvers: {{users: [bob]}}, {line}}}\n"
        "default: {outcome: deny}\n"
    )
    with pytest.raises(PolicyError) as info:
        load_policy_set(tmp_path, load_directory(FIXTURES / "users.yaml"))
    assert [str(p).replace(f"{tmp_path}/p.yaml:", "") for p in info.value.problems] == [expected]


def test_messages_say_a_passkey_is_needed_and_offer_no_cli_vote(world) -> None:
    _, _, svc = world
    r = use_cases.submit_request(svc, svc.directory.user("dave"), DEPLOY, "ship", None, {})
    summary = summarize(r)
    assert dict(context_rows(summary, "pending"))["Passkey"] == PASSKEY_NEEDED
    assert PASSKEY_NEEDED.startswith("this stage needs a passkey")
    assert set(summary.commands) == {"show", "cancel"}  # no `signoff approve` to offer
    # what an outbox row carries keeps it, so every channel can say it
    asked = RequestSubmitted(
        actor="dave",
        action=r.action,
        reason=r.reason,
        ticket=None,
        policy=r.policy_name,
        policy_set_digest="d",
        stages=tuple(r.stages),
    )
    row = json.loads(json.dumps(notify.message(r, asked, 1).payload()))
    stage = Message.from_payload(row).request.stage
    assert stage is not None and stage.approve_with == "passkey"


# ----- the use case's rule ---------------------------------------------------------------


def test_a_vote_without_a_passkey_is_refused_with_where_to_finish(world) -> None:
    store, _, svc = world
    r = use_cases.submit_request(svc, svc.directory.user("dave"), DEPLOY, "ship", None, {})
    bob = svc.directory.user("bob")
    with pytest.raises(StepUpRequired) as info:
        use_cases.cast_vote(svc, bob, r.id, Decision.APPROVE, "")
    assert info.value.detail == (
        f"this stage needs a passkey: finish on the web page "
        f"https://signoff.example.com/requests/{r.id}"
    )
    assert info.value.status == 403 and info.value.reason == "passkey_required"
    # a link's vote is refused the same way, and the link stays usable
    claims = {"sub": "bob", "rid": r.id, "dec": "deny", "jti": "link-1"}
    with pytest.raises(StepUpRequired):
        use_cases.vote_by_link(svc, claims, "no")
    assert store.links == set()
    assert store.requests[r.id].votes == [] and store.requests[r.id].status is Status.PENDING


def test_other_refusals_come_first(world) -> None:
    """Someone who may not vote at all is told that, not to go and find a passkey."""
    _, _, svc = world
    r = use_cases.submit_request(svc, svc.directory.user("dave"), DEPLOY, "ship", None, {})
    with pytest.raises(Exception) as info:
        use_cases.cast_vote(svc, svc.directory.user("erin"), r.id, Decision.APPROVE, "")
    assert "not an approver" in str(info.value)


def test_a_fresh_assertion_bound_to_the_vote_counts_and_is_audited(world) -> None:
    store, _, svc = world
    enrolled(svc, store)
    [key] = store.passkeys.values()
    assert key.name == "my laptop"
    r = use_cases.submit_request(svc, svc.directory.user("dave"), DEPLOY, "ship", None, {})
    bob = svc.directory.user("bob")
    options = passkeys.vote_options(svc, bob, r.id, Decision.APPROVE)
    assert options == {"allow": ["bob-key"]}
    done = use_cases.cast_vote(svc, bob, r.id, Decision.APPROVE, "ok", passkey=answer(store))
    assert done.status is Status.APPROVED
    [vote] = [e for e in store.audit if e.type == "vote.cast"]
    assert vote.payload_data()["step_up"] == {"method": "passkey", "credential": key.short_id}
    assert store.passkeys[key.id].sign_count == 1
    assert [e.type for e in store.audit if e.request_id is None] == ["passkey.added"]


def test_an_assertion_for_another_request_or_decision_is_refused(world) -> None:
    store, _, svc = world
    enrolled(svc, store)
    dave, bob = svc.directory.user("dave"), svc.directory.user("bob")
    r = use_cases.submit_request(svc, dave, DEPLOY, "ship", None, {})
    other = use_cases.submit_request(svc, dave, OTHER, "ship", None, {})

    passkeys.vote_options(svc, bob, other.id, Decision.APPROVE)
    with pytest.raises(PasskeyRefused, match="another request or decision"):
        use_cases.cast_vote(svc, bob, r.id, Decision.APPROVE, "", passkey=answer(store))
    passkeys.vote_options(svc, bob, r.id, Decision.DENY)
    with pytest.raises(PasskeyRefused, match="another request or decision"):
        use_cases.cast_vote(svc, bob, r.id, Decision.APPROVE, "", passkey=answer(store))
    # a signature that does not verify, another person's key, a late answer
    passkeys.vote_options(svc, bob, r.id, Decision.APPROVE)
    with pytest.raises(PasskeyRefused, match="does not verify"):
        use_cases.cast_vote(svc, bob, r.id, Decision.APPROVE, "", passkey=answer(store, ok=False))
    with pytest.raises(PasskeyRefused, match="not one you enrolled"):
        use_cases.cast_vote(
            svc, bob, r.id, Decision.APPROVE, "", passkey=answer(store, "carol-key")
        )
    assert store.requests[r.id].votes == []
    # carol's answer to bob's challenge is not hers to use
    enrolled(svc, store, "carol")
    passkeys.vote_options(svc, bob, r.id, Decision.APPROVE)
    stolen = answer(store, "carol-key")
    with pytest.raises(PasskeyRefused, match="already used or not asked for"):
        use_cases.cast_vote(
            svc, svc.directory.user("carol"), r.id, Decision.APPROVE, "", passkey=stolen
        )


def test_a_challenge_works_once_and_not_late(world) -> None:
    store, clock, svc = world
    enrolled(svc, store)
    dave, bob = svc.directory.user("dave"), svc.directory.user("bob")
    r = use_cases.submit_request(svc, dave, DEPLOY, "ship", None, {})
    passkeys.vote_options(svc, bob, r.id, Decision.DENY)
    clock.advance(seconds=passkeys.CHALLENGE_TTL.total_seconds() + 1)
    with pytest.raises(PasskeyRefused, match="took too long"):
        use_cases.cast_vote(svc, bob, r.id, Decision.DENY, "no", passkey=answer(store))
    passkeys.vote_options(svc, bob, r.id, Decision.DENY)
    late = answer(store)
    use_cases.cast_vote(svc, bob, r.id, Decision.DENY, "no", passkey=late)
    assert store.requests[r.id].status is Status.DENIED
    assert json.loads(late)["challenge"] not in store.challenges  # spent


def test_a_passkey_is_added_only_soon_after_signing_in(world) -> None:
    """A session cookie alone (stolen, say) cannot add a passkey and then approve."""
    store, clock, svc = world
    bob = svc.directory.user("bob")
    signed_in = clock.now()
    clock.advance(minutes=11)
    with pytest.raises(PasskeyRefused, match="sign in again to add a passkey"):
        passkeys.enrollment_options(svc, bob, signed_in)
    with pytest.raises(PasskeyRefused, match="sign in again"):
        passkeys.enroll(svc, bob, "laptop", "{}", signed_in)
    with pytest.raises(PasskeyRefused, match="sign in again"):
        passkeys.enrollment_options(svc, bob, None)
    assert store.challenges == {} and store.passkeys == {}


def test_enrollment_needs_a_name_and_a_passkey_is_removed_audited(world) -> None:
    store, _, svc = world
    bob = svc.directory.user("bob")
    with pytest.raises(Exception, match="name the passkey"):
        passkeys.enroll(svc, bob, "  ", "{}", svc.clock.now())
    enrolled(svc, store)
    [key] = passkeys.list_passkeys(svc, bob)
    with pytest.raises(Exception, match="no such passkey"):
        passkeys.remove(svc, svc.directory.user("carol"), key.id)
    passkeys.remove(svc, bob, key.id)
    assert passkeys.list_passkeys(svc, bob) == []
    removed = [e for e in store.audit if e.type == "passkey.removed"]
    assert removed[0].payload_data() == {
        "user": "bob",
        "name": "my laptop",
        "credential": key.short_id,
    }
    r = use_cases.submit_request(svc, svc.directory.user("dave"), DEPLOY, "ship", None, {})
    with pytest.raises(PasskeyRefused, match="you have none"):
        passkeys.vote_options(svc, bob, r.id, Decision.APPROVE)
