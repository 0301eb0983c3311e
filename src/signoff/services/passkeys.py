"""Passkeys: enrolling them on one's profile, removing them, and the step-up proof a vote
on a stage with ``approve_with: passkey`` needs.

A challenge is 32 random bytes kept on the server (``passkey_challenges``) with whom it
was given to and what for: an enrollment, or one vote (the request, the decision and the
action's digest). It works once (taking it deletes it, in the transaction that uses it)
and for ``CHALLENGE_TTL``. The browser's answer names its challenge in the signed client
data; the vote is counted only if that challenge was given to this person for exactly
this request, decision and action, and the passkey's signature over it verifies.
"""

from __future__ import annotations

import base64
import secrets
import unicodedata
from datetime import datetime, timedelta
from typing import Any

from signoff.domain.errors import Conflict, InvalidInput, NotFound, PasskeyRefused
from signoff.domain.events import PasskeyAdded, PasskeyRemoved
from signoff.domain.identity import User
from signoff.domain.requests import Decision, Request, StepUp
from signoff.services.dependencies import Services
from signoff.services.ports import Passkey, PasskeyChallenge, PasskeyVerifier, UnitOfWork

CHALLENGE_TTL = timedelta(minutes=5)
# A passkey is added within this long of signing in: a stolen session cookie alone (an
# older session) cannot add the thief's passkey and then approve with it.
ENROLL_AFTER_SIGN_IN = timedelta(minutes=10)
MAX_NAME = 100
MAX_PASSKEYS = 20


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _webauthn(svc: Services) -> PasskeyVerifier:
    if svc.webauthn is None:
        raise NotFound("passkeys are not set up on this server")
    return svc.webauthn


def list_passkeys(svc: Services, user: User) -> list[Passkey]:
    with svc.uow(write=False) as uow:
        return uow.passkeys.for_user(user.name)


def may_enroll(svc: Services, signed_in_at: datetime | None) -> bool:
    """Whether a session signed in at ``signed_in_at`` is recent enough to add a passkey."""
    return signed_in_at is not None and svc.clock.now() - signed_in_at <= ENROLL_AFTER_SIGN_IN


def _require_recent(svc: Services, signed_in_at: datetime | None) -> None:
    if not may_enroll(svc, signed_in_at):
        minutes = int(ENROLL_AFTER_SIGN_IN.total_seconds() // 60)
        raise PasskeyRefused(
            "sign_in_again",
            f"sign in again to add a passkey: one is added within {minutes} minutes of signing in",
        )


def enrollment_options(svc: Services, user: User, signed_in_at: datetime | None) -> dict[str, Any]:
    """The options for ``navigator.credentials.create``, with a new challenge (for a
    session signed in within ``ENROLL_AFTER_SIGN_IN``)."""
    user.require_enabled("enroll a passkey")
    _require_recent(svc, signed_in_at)
    webauthn = _webauthn(svc)
    challenge = secrets.token_bytes(32)
    with svc.uow() as uow:
        now = svc.clock.now()
        mine = uow.passkeys.for_user(user.name)
        if len(mine) >= MAX_PASSKEYS:
            raise InvalidInput(f"you have {MAX_PASSKEYS} passkeys: remove one first")
        uow.passkeys.forget(now - CHALLENGE_TTL)
        uow.passkeys.begin(PasskeyChallenge(_b64(challenge), user.name, "enroll", now))
        uow.commit()
    return webauthn.registration_options(user.name, challenge, [p.credential_id for p in mine])


def passkey_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("name the passkey (e.g. 'laptop' or 'security key')", field="name")
    if len(name) > MAX_NAME or any(unicodedata.category(c) == "Cc" for c in name):
        raise InvalidInput(f"a passkey's name is at most {MAX_NAME} characters", field="name")
    return name


def enroll(
    svc: Services, user: User, name: str, credential: str, signed_in_at: datetime | None
) -> Passkey:
    """Keep the passkey the browser made with an enrollment challenge of this person."""
    user.require_enabled("enroll a passkey")
    _require_recent(svc, signed_in_at)
    name = passkey_name(name)
    webauthn = _webauthn(svc)
    challenge, _ = webauthn.challenge_of(credential)
    with svc.uow() as uow:
        now = svc.clock.now()
        given = _take(uow, challenge, user, "enroll", now)
        credential_id, public_key, count = webauthn.verify_registration(
            credential, _unb64(given.challenge)
        )
        if uow.passkeys.by_credential(credential_id) is not None:
            raise Conflict("this passkey is already enrolled")
        passkey = Passkey(svc.new_id(), user.name, name, credential_id, public_key, count, now)
        uow.passkeys.add(passkey)
        uow.audit.append(
            now,
            None,
            PasskeyAdded(actor=user.name, user=user.name, name=name, credential=passkey.short_id),
        )
        uow.commit()
    return passkey


def remove(svc: Services, user: User, passkey_id: str) -> Passkey:
    """Remove one of one's own passkeys: it approves nothing any more."""
    with svc.uow() as uow:
        now = svc.clock.now()
        found = next((p for p in uow.passkeys.for_user(user.name) if p.id == passkey_id), None)
        if found is None:
            raise NotFound("you have no such passkey")
        uow.passkeys.remove(found.id)
        uow.audit.append(
            now,
            None,
            PasskeyRemoved(
                actor=user.name, user=user.name, name=found.name, credential=found.short_id
            ),
        )
        uow.commit()
    return found


def vote_options(svc: Services, user: User, request_id: str, decision: Decision) -> dict[str, Any]:
    """The options for ``navigator.credentials.get`` to vote ``decision`` on a request
    whose stage asks for a passkey: a challenge bound to this person, the request, the
    decision and the action's digest, for this person's passkeys."""
    user.require_enabled("vote")
    webauthn = _webauthn(svc)
    challenge = secrets.token_bytes(32)
    with svc.uow() as uow:
        now = svc.clock.now()
        request = uow.requests.get(request_id)
        refusal = request.vote_refusal(user.name)
        if refusal is not None:
            raise refusal
        if request.step_up_needed() != "passkey":
            raise InvalidInput("this stage does not ask for a passkey: vote with the form")
        mine = uow.passkeys.for_user(user.name)
        if not mine:
            raise PasskeyRefused(
                "no_passkey",
                f"this stage needs a passkey and you have none: enroll one on your profile "
                f"({svc.public_url}/profile), then vote again",
            )
        uow.passkeys.forget(now - CHALLENGE_TTL)
        uow.passkeys.begin(
            PasskeyChallenge(
                _b64(challenge),
                user.name,
                "vote",
                now,
                request.id,
                decision.value,
                request.action_digest,
            )
        )
        uow.commit()
    return webauthn.authentication_options(challenge, [p.credential_id for p in mine])


def verify_vote(
    svc: Services,
    uow: UnitOfWork,
    user: User,
    request: Request,
    decision: Decision,
    credential: str,
    now: datetime,
) -> StepUp:
    """The step-up proof of a vote, inside the vote's transaction: the challenge the
    answer signed is spent, must have been given to this person for exactly this
    request, decision and action, and the passkey's signature and sign count verify."""
    webauthn = _webauthn(svc)
    challenge, raw_id = webauthn.challenge_of(credential)
    given = _take(uow, challenge, user, "vote", now)
    bound = (given.request_id, given.decision, given.action_digest)
    if bound != (request.id, decision.value, request.action_digest):
        raise PasskeyRefused(
            "mismatch", "this passkey confirmation was made for another request or decision"
        )
    passkey = uow.passkeys.by_credential(raw_id)
    if passkey is None or passkey.user != user.name:
        raise PasskeyRefused("unknown_credential", "this passkey is not one you enrolled")
    count = webauthn.verify_authentication(
        credential, _unb64(given.challenge), passkey.public_key, passkey.sign_count
    )
    uow.passkeys.used(passkey.id, count, now)
    return StepUp(
        "passkey", passkey.short_id, user.name, request.id, decision, request.action_digest
    )


def _take(
    uow: UnitOfWork, challenge: str, user: User, purpose: str, now: datetime
) -> PasskeyChallenge:
    given = uow.passkeys.take(challenge)
    if given is None or given.user != user.name or given.purpose != purpose:
        raise PasskeyRefused(
            "unknown_challenge", "this passkey confirmation was already used or not asked for"
        )
    if now - given.created_at > CHALLENGE_TTL:
        raise PasskeyRefused("expired", "this passkey confirmation took too long: try again")
    return given
