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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from signoff.domain.errors import Forbidden, LinkRefused, NotFound, Unauthenticated
from signoff.domain.identity import User
from signoff.services.dependencies import Services
from signoff.services.ports import (
    OidcIdentity,
    OidcLogin,
    ProviderPerson,
    UnitOfWork,
    WebSession,
)

# A single sign-in must come back from the provider within this long.
OIDC_LOGIN_TTL = timedelta(minutes=10)

# A busy page does not write on every request: last_seen moves at most this often.
TOUCH_EVERY_SECONDS = 60


@dataclass(frozen=True)
class SignedIn:
    """Who a valid session is for, and the token its forms must carry."""

    user: User
    csrf: str
    # when the person signed in (not when they last used the session): adding a passkey
    # needs a recent sign-in, not only a cookie
    signed_in_at: datetime | None = None


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
    return value, SignedIn(user, csrf, now)


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
    if svc.single_sign_on:
        with svc.uow(write=False) as uow:
            user = _with_identity(user, uow.identities.by_name(found.user))
    if user is None:
        raise Unauthenticated("sign in first")
    if user.disabled:
        end_session(svc, value)
        raise Unauthenticated(f"user {user.name} is disabled")
    if (now - found.last_seen_at).total_seconds() > TOUCH_EVERY_SECONDS:
        with svc.uow() as uow:
            uow.sessions.touch(key, now)
            uow.commit()
    return SignedIn(user, found.csrf, found.created_at)


def person(svc: Services, name: str) -> User:
    """Anyone Signoff knows by name: a person of the users file and, with single sign-on,
    one a provider signed in (with their latest groups and email). NotFound otherwise."""
    user = svc.directory.users.get(name)
    if svc.single_sign_on:
        with svc.uow(write=False) as uow:
            user = _with_identity(user, uow.identities.by_name(name))
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def email_of(svc: Services, name: str) -> str | None:
    """Where mail for a person goes: the users file's address, else their provider's."""
    try:
        return person(svc, name).email
    except NotFound:
        return None


def _with_identity(user: User | None, identity: OidcIdentity | None) -> User | None:
    """A person as the directory and their latest single sign-on make them: the groups of
    both; the provider's email when the directory has none. None: neither knows them."""
    if identity is None:
        return user
    if user is None:
        return User(name=identity.user, email=identity.email, groups=identity.groups)
    return replace(user, groups=user.groups | identity.groups, email=user.email or identity.email)


def begin_oidc_login(
    svc: Services, state: str, browser: str, nonce: str, verifier: str, next_path: str
) -> None:
    """Keep what the callback of a single sign-in checks, bound to the browser that
    started it (the SHA-256 of a random cookie value it holds)."""
    now = svc.clock.now()
    with svc.uow() as uow:
        uow.identities.forget_logins(now - OIDC_LOGIN_TTL)  # abandoned ones
        uow.identities.begin_login(
            OidcLogin(state, _hash(browser), nonce, verifier, next_path, now)
        )
        uow.commit()


def take_oidc_login(svc: Services, state: str, browser: str) -> OidcLogin:
    """The sign-in a callback answers, spent now (a state works once); Unauthenticated
    when it is unknown, used, old, or was started by another browser."""
    if not state or len(state) > 64 or not browser or len(browser) > 200:
        raise Unauthenticated("this sign-in is not one Signoff started: sign in again")
    with svc.uow() as uow:
        login = uow.identities.take_login(state)
        uow.commit()
    if login is None:
        raise Unauthenticated("this sign-in is unknown or was already used: sign in again")
    if not secrets.compare_digest(login.browser_hash, _hash(browser)):
        raise Unauthenticated("this sign-in was started in another browser: sign in again")
    if svc.clock.now() - login.created_at > OIDC_LOGIN_TTL:
        raise Unauthenticated("this sign-in took too long: sign in again")
    return login


def sign_in_by_oidc(
    svc: Services,
    issuer: str,
    subject: str,
    name: str | None,
    email: str | None,
    groups: frozenset[str],
) -> tuple[str, SignedIn]:
    """A session for the person a provider vouched for, (issuer, subject). At their
    first sign-in they get the name the provider gives (its name claim, else their
    email), which then stays theirs; their email and (mapped) groups are refreshed at
    every sign-in."""
    value = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with svc.uow() as uow:
        now = svc.clock.now()
        known = uow.identities.by_subject(issuer, subject)
        person = known.user if known is not None else _new_name(uow, name, email)
        identity = OidcIdentity(issuer, subject, person, email, groups, now)
        uow.identities.save(identity)
        uow.sessions.add(_hash(value), WebSession(person, csrf, now, now))
        uow.commit()
    user = _with_identity(svc.directory.users.get(person), identity)
    assert user is not None
    return value, SignedIn(user, csrf, now)


def identify(svc: Services, person: ProviderPerson) -> User:
    """The person a provider's access token stands for (``signoff login``), known by
    (issuer, subject) or provisioned as at a web sign-in (same name rules); their email
    and groups stored when the token says otherwise than the latest sign-in (a token
    refresh is a sign-in). Unauthenticated for a person the users file disables."""
    with svc.uow(write=False) as uow:
        known = uow.identities.by_subject(person.issuer, person.subject)
    email = person.email or (known.email if known is not None else None)
    if known is None or known.groups != person.groups or known.email != email:
        with svc.uow() as uow:
            now = svc.clock.now()
            known = uow.identities.by_subject(person.issuer, person.subject)
            name = known.user if known is not None else _new_name(uow, person.name, email)
            known = OidcIdentity(person.issuer, person.subject, name, email, person.groups, now)
            uow.identities.save(known)
            uow.commit()
    user = _with_identity(svc.directory.users.get(known.user), known)
    assert user is not None
    if user.disabled:
        raise Unauthenticated(f"user {user.name} is disabled")
    return user


def _new_name(uow: UnitOfWork, name: str | None, email: str | None) -> str:
    chosen = (name or email or "").strip()
    if not chosen or len(chosen) > 200 or any(c.isspace() or not c.isprintable() for c in chosen):
        raise Forbidden(
            "the provider gave no usable name for you (its name claim, or an email): ask an admin"
        )
    if uow.identities.by_name(chosen) is not None:
        raise Forbidden(
            f"the name {chosen!r} is already another single sign-on account's: ask an admin"
        )
    return chosen


def end_session(svc: Services, value: str) -> None:
    with svc.uow() as uow:
        uow.sessions.delete(_hash(value))
        uow.commit()


def csrf_ok(signed_in: SignedIn, sent: str) -> bool:
    return bool(sent) and secrets.compare_digest(signed_in.csrf, sent)
