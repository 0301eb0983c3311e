"""Web sessions: sign in with a one-time link, stay signed in, sign out.

A session's cookie value is a random 256-bit string; the database keeps only its
SHA-256, with the person, a CSRF token for the session's forms and two times. A session
ends when unused for ``session_idle`` or ``session_max`` after sign-in, whichever comes
first, at sign-out, when an admin signs the person out everywhere
(``auth.sign_out_everywhere``), or when the users file marks them ``disabled``. Sign-in
links are single-use (their ``jti`` is recorded in the
same transaction that makes the session) and expire.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signoff.domain.errors import LinkRefused, NotFound, Unauthenticated
from signoff.domain.identity import User
from signoff.services.dependencies import Services
from signoff.services.ports import WebSession

# A busy page does not write on every request: last_seen moves at most this often.
TOUCH_EVERY_SECONDS = 60


@dataclass(frozen=True)
class SignedIn:
    """Who a valid session is for, and the token its forms must carry."""

    user: User
    csrf: str


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def sign_in_by_link(svc: Services, claims: Mapping[str, Any]) -> tuple[str, SignedIn]:
    """Use a verified sign-in link: a new session for its person (the cookie value and
    who it is for). The link is spent in the same transaction."""
    try:
        user = svc.directory.user(str(claims["sub"]))
    except NotFound:
        raise LinkRefused(
            "unknown_user", "this link is for someone Signoff does not know"
        ) from None
    if user.disabled:
        raise LinkRefused("disabled", f"user {user.name} is disabled")
    value = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with svc.uow() as uow:
        now = svc.clock.now()
        if not uow.links.use(str(claims["jti"]), now):
            raise LinkRefused("used", "this sign-in link has already been used")
        uow.sessions.add(_hash(value), WebSession(user.name, csrf, now, now))
        uow.commit()
    return value, SignedIn(user, csrf)


def session_for(svc: Services, value: str) -> SignedIn:
    """The person a session cookie stands for; Unauthenticated when there is none, it
    ended, or its person left the directory or is disabled. The person is read from the
    directory on each call, so their groups and role are those the server loaded."""
    if not value or len(value) > 200:
        raise Unauthenticated("sign in first")
    key = _hash(value)
    now = svc.clock.now()
    with svc.uow(write=False) as uow:
        found = uow.sessions.get(key)
    if found is None:
        raise Unauthenticated("sign in first")
    if now - found.last_seen_at > svc.session_idle or now - found.created_at > svc.session_max:
        end_session(svc, value)
        raise Unauthenticated("your session has ended: sign in again")
    user = svc.directory.users.get(found.user)
    if user is None:
        raise Unauthenticated("sign in first")
    if user.disabled:
        end_session(svc, value)
        raise Unauthenticated(f"user {user.name} is disabled")
    if (now - found.last_seen_at).total_seconds() > TOUCH_EVERY_SECONDS:
        with svc.uow() as uow:
            uow.sessions.touch(key, now)
            uow.commit()
    return SignedIn(user, found.csrf)


def end_session(svc: Services, value: str) -> None:
    with svc.uow() as uow:
        uow.sessions.delete(_hash(value))
        uow.commit()


def csrf_ok(signed_in: SignedIn, sent: str) -> bool:
    return bool(sent) and secrets.compare_digest(signed_in.csrf, sent)
