"""API tokens: create them (shown once, stored hashed), revoke them, and authenticate
callers (API tokens, pipelines' workload tokens, people's access tokens from the single
sign-on provider: ``signoff login``); and sign a person out everywhere (every web
session, every token)."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from signoff.domain.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from signoff.domain.events import TokenCreated, TokenRevoked, UserSignedOut
from signoff.domain.identity import User
from signoff.domain.limits import check_text

if TYPE_CHECKING:
    from signoff.services.dependencies import Services
    from signoff.services.ports import ApiToken


class TokenCache:
    """Recently verified tokens, so a busy client does not cost a query per call.

    Holds only token hashes that matched, for ``ttl`` seconds (a revoked token stops
    working within that time); unknown tokens are always checked against the database.
    """

    def __init__(self, ttl: float = 5.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[str, float]] = {}

    def get(self, token_hash: str) -> str | None:
        hit = self._entries.get(token_hash)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, token_hash: str, user: str) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[token_hash] = (user, time.monotonic() + self.ttl)

    def forget(self, token_hash: str) -> None:
        """Drop a token at once (it was revoked): this process stops accepting it now,
        others within ``ttl``."""
        self._entries.pop(token_hash, None)


class PersonCache:
    """People recently authenticated by a provider's access token (``signoff login``),
    by the token's hash, for ``ttl`` seconds at most and never past the token's expiry:
    a busy CLI costs neither a signature check nor a query per call."""

    def __init__(self, ttl: float = 30.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[User, float]] = {}

    def get(self, token_hash: str) -> User | None:
        hit = self._entries.get(token_hash)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, token_hash: str, user: User, seconds_left: float) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        until = time.monotonic() + max(0.0, min(self.ttl, seconds_left))
        self._entries[token_hash] = (user, until)

    def forget_user(self, name: str) -> None:
        """Drop every entry of a person (signed out everywhere): this process asks the
        token's issuer's keys and the directory again at their next call."""
        for key in [k for k, (u, _) in self._entries.items() if u.name == name]:
            self._entries.pop(key, None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


MAX_LABEL = 200  # characters of a token's label


def create_token(svc: Services, user_name: str, label: str = "", by: User | None = None) -> str:
    """A new API token for a user; the plain token is returned once and stored hashed.

    ``by`` is the person asking (the web pages): anyone may make their own, admins one
    for anyone. Without it (the CLI, run with the server's settings) the actor is the
    server's administrator."""
    if by is not None and by.name != user_name:
        by.require_admin("create an API token for someone else")
    svc.directory.user(user_name).require_enabled("get an API token")
    if len(label) > MAX_LABEL:
        raise InvalidInput(f"a label is at most {MAX_LABEL} characters", field="label")
    check_text(label, "label")
    token = "so_" + secrets.token_urlsafe(32)
    actor = by.name if by is not None else "admin"
    with svc.uow() as uow:
        now = svc.clock.now()
        uow.tokens.add(svc.new_id(), user_name, hash_token(token), label, now)
        uow.audit.append(now, None, TokenCreated(actor=actor, user=user_name, label=label))
        uow.commit()
    return token


def revoke_token(svc: Services, by: User, token_id: str) -> ApiToken:
    """Stop an API token: its owner or an admin may. It stops authenticating at once on
    this process (its cache entry is dropped) and within the cache's few seconds on
    others. Returns the token as it was."""
    with svc.uow() as uow:
        found = uow.tokens.get(token_id)
        if found is None or (found.user != by.name and not by.admin):
            # someone else's token does not exist, to anyone but an admin
            raise NotFound(f"no API token with id {token_id!r}")
        if found.revoked_at is not None:
            raise Conflict("this token was revoked already")
        now = svc.clock.now()
        token_hash = uow.tokens.revoke(token_id, now)
        if token_hash is None:
            raise Conflict("this token was revoked already")
        uow.audit.append(
            now,
            None,
            TokenRevoked(actor=by.name, token_id=found.id, user=found.user, label=found.label),
        )
        uow.commit()
    svc.token_cache.forget(token_hash)
    return found


def _enabled(user: User) -> User:
    if user.disabled:
        raise Unauthenticated(f"user {user.name} is disabled")
    return user


def authenticate_cached(svc: Services, token: str) -> User | None:
    """The user of a recently verified token, without touching the database.

    The person is read from the directory on each call: their groups, admin role and
    ``disabled`` are those of the users file the server loaded, never the token's."""
    person = svc.person_cache.get(hash_token(token)) if svc.people_tokens is not None else None
    if person is not None:
        return person
    name = svc.token_cache.get(hash_token(token))
    user = svc.directory.users.get(name) if name is not None else None
    return _enabled(user) if user is not None else None


def authenticate(svc: Services, token: str) -> User:
    if svc.people_tokens is not None and svc.people_tokens.accepts(token):
        return authenticate_person(svc, token)
    if svc.workload is not None and svc.workload.accepts(token):
        return svc.workload.verify(token)
    if svc.people_tokens is not None and token.count(".") == 2 and not token.startswith("so_"):
        raise Unauthenticated(
            f"the token is neither an API token nor an access token from "
            f"{svc.people_tokens.issuer} (its issuer is not trusted)"
        )
    cached = authenticate_cached(svc, token)
    if cached is not None:
        return cached
    digest = hash_token(token)
    with svc.uow(write=False) as uow:
        name = uow.tokens.user_for(digest)
    if name is None or name not in svc.directory.users:
        raise Unauthenticated("the API token is not valid")
    user = _enabled(svc.directory.user(name))
    svc.token_cache.put(digest, name)
    return user


def authenticate_person(svc: Services, token: str) -> User:
    """The person a single sign-on provider's access token stands for (``signoff
    login``): the token checked against the provider's keys, then (issuer, subject)
    known or provisioned as the web sign-in does, with the token's (mapped) groups, so
    a group removed at the provider is gone at the next token refresh."""
    from signoff.services.sessions import identify

    assert svc.people_tokens is not None
    found = svc.people_tokens.verify_access_token(token)
    user = identify(svc, found)
    svc.person_cache.put(hash_token(token), user, found.expires_at - time.time())
    return user


@dataclass(frozen=True)
class SignedOut:
    """What ``sign_out_everywhere`` ended: how many web sessions, which tokens."""

    user: str
    sessions: int
    tokens: tuple[str, ...]


def sign_out_everywhere(svc: Services, user_name: str, by: User | None = None) -> SignedOut:
    """End every web session of a person and revoke all their API tokens, audited
    (``user.signed_out``). An admin's act (``by``; None: the CLI, run with the server's
    settings, whose actor is ``admin``). Works for anyone in the directory, disabled or
    not; revoked tokens stop at once on this process, within the token cache's few
    seconds on others; sessions end at their next request everywhere."""
    if by is not None:
        by.require_admin("end someone's sessions and revoke their tokens")
    svc.directory.user(user_name)
    with svc.uow() as uow:
        now = svc.clock.now()
        sessions = uow.sessions.delete_for_user(user_name)
        revoked = uow.tokens.revoke_for_user(user_name, now)
        ended = SignedOut(user_name, sessions, tuple(token_id for token_id, _ in revoked))
        uow.audit.append(
            now,
            None,
            UserSignedOut(
                actor=by.name if by is not None else "admin",
                user=user_name,
                sessions=ended.sessions,
                tokens=ended.tokens,
            ),
        )
        uow.commit()
    for _, token_hash in revoked:
        svc.token_cache.forget(token_hash)
    svc.person_cache.forget_user(user_name)
    return ended
