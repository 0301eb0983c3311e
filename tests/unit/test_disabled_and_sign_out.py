"""Disabled people and signing someone out everywhere, on the in-memory unit of work:
a person the users file marks ``disabled`` is refused by every use case they could act
through, and their tokens and sessions stop; an admin ends every session of a person
and revokes all their tokens at once, audited."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from signoff.domain.actions import Action
from signoff.domain.errors import Forbidden, LinkRefused, Refused, Unauthenticated
from signoff.domain.requests import Decision, Status
from signoff.services import auth, sessions
from signoff.services import requests as use_cases
from signoff.services.dependencies import Services
from signoff.services.ports import FixedClock
from tests.fakes import FIXTURES, Recorder, Store, fake_services

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
WRITE = Action("sql.execute", "pg/prod", {"sql": "UPDATE t SET x = 1 WHERE id = 1"})
READ = Action("sql.execute", "pg/x", {"sql": "select 1"})


def users_with(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the fixture users file with one line changed."""
    text = (FIXTURES / "users.yaml").read_text()
    assert old in text
    path = tmp_path / "users.yaml"
    path.write_text(text.replace(old, new))
    return path


@pytest.fixture
def store() -> Store:
    return Store()


def services(store: Store, users: Path = FIXTURES / "users.yaml") -> Services:
    """Services over the same store: a server (re)started with this users file."""
    return fake_services(store, FixedClock(START), Recorder(), users=users)


def disable(tmp_path: Path, name: str) -> Path:
    return users_with(
        tmp_path,
        f"{{name: {name}, email: {name}@example.com}}",
        f"{{name: {name}, disabled: true}}",
    )


def test_the_users_file_marks_a_person_disabled(tmp_path: Path, store: Store) -> None:
    svc = services(store, disable(tmp_path, "carol"))
    carol = svc.directory.user("carol")
    assert carol.disabled and not svc.directory.user("bob").disabled
    assert "carol" in svc.directory.groups["dba"]  # still a member; just refused


def test_a_disabled_person_cannot_vote_ask_cancel_or_redeem(tmp_path: Path, store: Store) -> None:
    before = services(store)
    rid = use_cases.submit_request(
        before, before.directory.user("dave"), WRITE, "fix", "OPS-1", {}
    ).id
    granted = use_cases.submit_request(before, before.directory.user("carol"), READ, "", None, {})
    assert granted.grant is not None
    svc = services(store, disable(tmp_path, "carol"))
    carol = svc.directory.user("carol")
    with pytest.raises(Refused, match="user carol is disabled, and may not vote") as refused:
        use_cases.cast_vote(svc, carol, rid, Decision.APPROVE, "ok")
    assert refused.value.reason == "disabled" and isinstance(refused.value, Forbidden)
    with pytest.raises(Refused, match="user carol is disabled"):  # a mail or Teams link
        use_cases.vote_by_link(svc, {"sub": "carol", "rid": rid, "dec": "approve", "jti": "j1"}, "")
    assert "j1" not in store.links  # the link is not used up
    with pytest.raises(Refused, match="user carol is disabled, and may not ask"):
        use_cases.submit_request(svc, carol, READ, "", None, {})
    with pytest.raises(Refused, match="may not cancel"):
        use_cases.cancel_request(svc, carol, granted.id, "")
    with pytest.raises(Refused, match="may not revoke"):
        use_cases.revoke_grant(svc, carol, granted.grant.id, "")
    with pytest.raises(Refused, match="may not redeem"):
        use_cases.redeem_grant(svc, carol, "token", READ)
    assert store.requests[rid].votes == [] and len(store.requests) == 2
    # bob, enabled, still votes as before
    use_cases.cast_vote(svc, svc.directory.user("bob"), rid, Decision.APPROVE, "ok")
    assert store.requests[rid].status is Status.PENDING


def test_a_disabled_persons_token_and_session_stop_and_no_new_ones(
    tmp_path: Path, store: Store
) -> None:
    before = services(store)
    token = auth.create_token(before, "carol", "laptop")
    cookie, _ = sessions.sign_in_by_link(before, {"sub": "carol", "jti": "s1"})
    svc = services(store, disable(tmp_path, "carol"))
    assert auth.authenticate(before, token).name == "carol"  # cached by the old process
    with pytest.raises(Unauthenticated, match="user carol is disabled"):
        auth.authenticate(svc, token)
    svc.token_cache.put(auth.hash_token(token), "carol")  # even when cached
    with pytest.raises(Unauthenticated, match="user carol is disabled"):
        auth.authenticate_cached(svc, token)
    with pytest.raises(Unauthenticated, match="user carol is disabled"):
        sessions.session_for(svc, cookie)
    assert store.sessions == {}  # the session is ended, not just refused
    with pytest.raises(LinkRefused, match="user carol is disabled") as refused:
        sessions.sign_in_by_link(svc, {"sub": "carol", "jti": "s2"})
    assert refused.value.reason == "disabled" and "s2" not in store.links
    with pytest.raises(Refused, match="user carol is disabled"):
        auth.create_token(svc, "carol", "another", by=svc.directory.user("alice"))


def test_an_admin_signs_a_person_out_everywhere_audited(store: Store) -> None:
    svc = services(store)
    bob, alice = svc.directory.user("bob"), svc.directory.user("alice")
    tokens = [auth.create_token(svc, "bob", label) for label in ("laptop", "ci")]
    auth.revoke_token(svc, bob, next(t.id for t in store.tokens.values() if t.label == "ci"))
    dave_token = auth.create_token(svc, "dave", "ci")
    cookies = [sessions.sign_in_by_link(svc, {"sub": "bob", "jti": j})[0] for j in ("a", "b")]
    dave_cookie, _ = sessions.sign_in_by_link(svc, {"sub": "dave", "jti": "c"})
    assert auth.authenticate(svc, tokens[0]).name == "bob"  # cached

    with pytest.raises(Forbidden, match="only an admin may end someone's sessions"):
        auth.sign_out_everywhere(svc, "bob", by=svc.directory.user("dave"))
    ended = auth.sign_out_everywhere(svc, "bob", by=alice)

    laptop = next(t for t in store.tokens.values() if t.label == "laptop" and t.user == "bob")
    assert (ended.sessions, ended.tokens) == (2, (laptop.id,))  # ci was revoked already
    for token in tokens:
        with pytest.raises(Unauthenticated):
            auth.authenticate(svc, token)
    for cookie in cookies:
        with pytest.raises(Unauthenticated):
            sessions.session_for(svc, cookie)
    # nobody else is touched
    assert auth.authenticate(svc, dave_token).name == "dave"
    assert sessions.session_for(svc, dave_cookie).user.name == "dave"
    last = store.audit[-1]
    assert (last.type, last.actor, last.request_id) == ("user.signed_out", "alice", None)
    assert last.payload_data() == {"user": "bob", "sessions": 2, "tokens": [laptop.id]}
    # again: nothing left to end, still audited; the CLI acts as "admin"
    again = auth.sign_out_everywhere(svc, "bob")
    assert (again.sessions, again.tokens) == (0, ())
    assert store.audit[-1].actor == "admin"


def test_groups_come_from_the_users_file_the_server_loaded(tmp_path: Path, store: Store) -> None:
    """Removed from a group: a token made before still authenticates the person, with
    the groups of the file loaded now; a request asked after no longer asks them."""
    before = services(store)
    token = auth.create_token(before, "carol", "laptop")
    cookie, _ = sessions.sign_in_by_link(before, {"sub": "carol", "jti": "s1"})
    svc = services(store, users_with(tmp_path, "dba: [bob, carol]", "dba: [bob, erin]"))
    carol = auth.authenticate(svc, token)
    assert carol.name == "carol" and carol.groups == frozenset({"sre"})
    assert sessions.session_for(svc, cookie).user.groups == frozenset({"sre"})
    rid = use_cases.submit_request(svc, svc.directory.user("dave"), WRITE, "fix", "OPS-1", {}).id
    with pytest.raises(Forbidden, match="carol is not an approver of stage 1"):
        use_cases.cast_vote(svc, carol, rid, Decision.APPROVE, "ok")
