"""The request use cases. Each runs in one unit of work: load, ask the domain, then
store the new state, its audit events and its outbox rows together, and commit once."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from signoff.domain.actions import Action
from signoff.domain.errors import (
    GrantRefused,
    InvalidInput,
    LinkRefused,
    NotFound,
    StepUpRequired,
)
from signoff.domain.events import DomainEvent, GrantRefusal
from signoff.domain.identity import User
from signoff.domain.policy import Decision as PolicyDecision
from signoff.domain.policy import EvaluationInput, Outcome, Policy
from signoff.domain.requests import (
    MAX_TEXT,
    Decision,
    Request,
    StagePlan,
    Status,
    StepUp,
    step_up_detail,
)
from signoff.services import passkeys, sessions
from signoff.services.dependencies import Services
from signoff.services.history import StoredHistory
from signoff.services.ports import UnitOfWork
from signoff.services.recording import publish_changes, record_changes, save_changes


def evaluation_input(
    svc: Services,
    user: User,
    action: Action,
    context: Mapping[str, Any],
    ticket: str | None,
) -> EvaluationInput:
    """What the policies judge: the action, the requester, now, the request's context,
    and (when a condition reads it) the requester's record."""
    now = svc.clock.now()
    record = StoredHistory(svc, user.name, now) if svc.policies.uses_history else None
    return EvaluationInput.of(action, user, now, context, ticket, record)


def explain(
    svc: Services,
    user: User,
    action: Action,
    context: Mapping[str, Any],
    ticket: str | None,
    as_user: str | None = None,
) -> tuple[User, PolicyDecision]:
    """What the policy set would decide for this ask by ``user`` (or, for admins, by
    ``as_user``), and why each earlier policy did not match. A dry run: nothing is
    stored. Returns the person it was judged for, and the decision."""
    subject = user
    if as_user and as_user != user.name:
        user.require_admin("evaluate policies as another user")
        subject = svc.directory.user(as_user)
    decision = svc.policies.explain(evaluation_input(svc, subject, action, context, ticket))
    return subject, decision


def submit_request(
    svc: Services,
    user: User,
    action: Action,
    reason: str,
    ticket: str | None,
    context: dict[str, Any],
) -> Request:
    return submit_or_fold(svc, user, action, reason, ticket, context)[0]


def submit_or_fold(
    svc: Services,
    user: User,
    action: Action,
    reason: str,
    ticket: str | None,
    context: dict[str, Any],
    attach: Callable[[UnitOfWork, Request], None] | None = None,
    *,
    redeem: bool = False,
) -> tuple[Request, bool]:
    """Submit a request; or, when the same requester already has the same action pending
    under review, fold this ask into that request (True) instead of asking again.

    ``attach`` stores what else this ask brought (a GitHub run waiting on it) in the same
    transaction, before the request's events are recorded; it may raise to undo it all.
    ``redeem``: when a policy allows the action at once, the requester (about to perform
    it, like the MCP proxy) also spends one use of its grant, in the same transaction,
    as ``redeem_grant`` would."""
    user.require_enabled("ask for anything")
    svc.check_action(action)
    now = svc.clock.now()
    decision = svc.policies.evaluate(evaluation_input(svc, user, action, context, ticket))
    reason = reason.strip()
    _check_request_rules(decision.policy, reason, ticket)
    request = _new_request(svc, user, action, reason, ticket, context, decision, now)
    events = request.start(now)
    if decision.outcome is Outcome.ALLOW:
        events += request.approve("policy", now, svc.new_id)
        if redeem and request.may_redeem(user.name):
            events += request.redeem(action.digest, user.name, now)
    elif decision.outcome is Outcome.DENY:
        events += request.deny_by_policy(now, denial(svc, decision))
    with svc.uow() as uow:
        if decision.outcome is Outcome.REVIEW:
            twin = uow.requests.pending_duplicate(user.name, action.digest)
            if twin is not None:
                existing = uow.requests.get(twin, for_update=True)
                version = existing.version
                if attach is not None:
                    attach(uow, existing)
                save_changes(svc, uow, now, existing, version, existing.fold(reason))
                uow.commit()
                publish_changes(svc, uow)
                return existing, True
        uow.requests.add(request)
        if attach is not None:
            attach(uow, request)
        # decided by policy: the requester reads the outcome in this call's answer
        record_changes(
            svc, uow, now, request, events, answered=request.status is not Status.PENDING
        )
        uow.commit()
    svc.observer.submitted(request)
    if request.status is not Status.PENDING:
        svc.observer.decided(request)
    publish_changes(svc, uow)
    return request, False


def denial(svc: Services, decision: PolicyDecision) -> str:
    """Why a policy denies a request, as the requester reads it (stored as the denial's
    comment; the new-request page's dry run says the same)."""
    p = decision.policy
    if decision.error is not None:
        return f"{decision.reason} ({decision.error})"
    if p is svc.policies.default:
        return "no policy matched, and the default outcome is deny"
    return f"policy {p.name!r} denies it{_said(p.description)}"


def _said(description: str) -> str:
    text = " ".join(description.split())
    return f": {text}" if text else ""


def _check_request_rules(policy: Policy, reason: str, ticket: str | None) -> None:
    """What the matching policy asks of every request: a reason, a ticket of a form."""
    if len(reason) > MAX_TEXT:
        raise InvalidInput(f"reason is longer than {MAX_TEXT} characters", field="reason")
    if policy.rules.reason_required and not reason:
        raise InvalidInput(f"policy {policy.name!r} requires a reason", field="reason")
    pattern = policy.rules.ticket_regex()
    if pattern is not None and (not ticket or not re.fullmatch(pattern, ticket)):
        given = f"got {ticket!r}" if ticket else "none was given"
        raise InvalidInput(
            f"policy {policy.name!r} requires a ticket matching the pattern "
            f"{policy.rules.ticket_pattern} ({given})",
            field="ticket",
        )


def _new_request(
    svc: Services,
    user: User,
    action: Action,
    reason: str,
    ticket: str | None,
    context: dict[str, Any],
    decision: PolicyDecision,
    now: datetime,
) -> Request:
    """The request as the policy shapes it: its stages with groups resolved to people,
    its grant's terms, its deadlines and channels."""
    policy = decision.policy
    resolve = people_resolver(svc)
    stages = [
        StagePlan(
            s.name,
            resolve(s.users, s.groups),
            s.quorum,
            s.timeout,
            s.reminders,
            resolve(s.escalate_users, s.escalate_groups),
            s.escalation_timeout,
            s.approve_with,
        )
        for s in policy.stages
    ]
    return Request(
        id=svc.new_id(),
        requester=user.name,
        action=action,
        reason=reason,
        ticket=ticket,
        context=context,
        policy_name=policy.name,
        policy_set_digest=svc.policies.digest,
        stages=stages if decision.outcome is Outcome.REVIEW else [],
        grant_ttl=policy.grant.ttl,
        grant_uses=policy.grant.uses,
        read_only=policy.grant.read_only,
        executors=resolve(policy.grant.executor_users, policy.grant.executor_groups),
        redeemers=resolve(policy.grant.redeemer_users, policy.grant.redeemer_groups),
        viewers=resolve(policy.viewer_users, policy.viewer_groups),
        created_at=now,
        on_timeout=policy.on_timeout,
        expires_at=now + svc.max_pending,
        notify=policy.notify,
        digest_every=policy.digest_every,
        requester_snapshot=snapshot(user),
    )


def snapshot(user: User) -> dict[str, Any]:
    """What a requester was when the policies judged their ask (stored with it)."""
    return {
        "groups": sorted(user.groups),
        "admin": user.admin,
        "email": user.email,
        "claims": dict(user.claims),
    }


def people_resolver(svc: Services) -> Callable[[Iterable[str], Iterable[str]], frozenset[str]]:
    """Who users and groups name: the directory's members, and with single sign-on also
    the people whose latest sign-in put them in one of the groups."""
    if not svc.single_sign_on:
        return svc.directory.resolve
    with svc.uow(write=False) as uow:
        extra = uow.identities.memberships()

    def resolve(users: Iterable[str], groups: Iterable[str]) -> frozenset[str]:
        groups = tuple(groups)
        found = svc.directory.resolve(users, groups)
        for g in groups:
            found |= extra.get(g, frozenset())
        return found

    return resolve


def cast_vote(
    svc: Services,
    user: User,
    request_id: str,
    decision: Decision,
    comment: str,
    *,
    channel: str = "api",
    passkey: str | None = None,
) -> Request:
    """A vote by a signed-in person; ``channel`` says where it came from (api, cli, web,
    slack), for the flow's analytics; ``passkey``: the browser's WebAuthn assertion
    (JSON), which a stage with ``approve_with: passkey`` needs (``services/passkeys.py``)."""
    return _vote(svc, user, request_id, decision, comment, None, channel, passkey=passkey)


def vote_by_link(svc: Services, claims: Mapping[str, Any], comment: str) -> Request:
    """Vote as the approver a verified link was made for; the link is used up only if
    the vote is recorded (same transaction)."""
    user = sessions.person(svc, str(claims["sub"]))
    channel = str(claims.get("ch") or "link")
    return _vote(
        svc,
        user,
        str(claims["rid"]),
        Decision(str(claims["dec"])),
        comment,
        str(claims["jti"]),
        channel,
    )


def _vote(
    svc: Services,
    user: User,
    request_id: str,
    decision: Decision,
    comment: str,
    link_id: str | None,
    channel: str,
    passkey: str | None = None,
) -> Request:
    """Every vote comes here (API, web form, mail and Teams links, Slack buttons). On a
    stage that asks for a passkey, the vote counts only with a fresh assertion made for
    it; without one it is refused with where to finish (the request's web page), and a
    link it came by stays unused."""
    user.require_enabled("vote")
    if len(comment) > MAX_TEXT:
        raise InvalidInput(f"comment is longer than {MAX_TEXT} characters", field="comment")
    with svc.uow() as uow:
        now = svc.clock.now()
        if link_id is not None and not uow.links.use(link_id, now):
            raise LinkRefused("used", "this link has already been used")
        request = uow.requests.get(request_id, for_update=True)
        version = request.version
        step_up: StepUp | None = None
        if request.step_up_needed() == "passkey":
            refusal = request.vote_refusal(user.name)
            if refusal is not None:
                raise refusal
            if passkey is None:
                raise StepUpRequired(step_up_detail(request.id, svc.public_url))
            step_up = passkeys.verify_vote(svc, uow, user, request, decision, passkey, now)
        events = request.vote(user.name, decision, comment, now, svc.new_id, step_up)
        save_changes(svc, uow, now, request, version, events)
        uow.flow.seen(request.id, user.name, channel, now)  # a vote is a look, at the latest
        uow.flow.add(request.id, [user.name], "voted", channel, now)
        uow.commit()
    if request.status is not Status.PENDING:
        svc.observer.decided(request)
    publish_changes(svc, uow)
    return request


def looked(svc: Services, user: User, request: Request, channel: str) -> None:
    """An approver of a pending request opened it (its page, a link's confirmation
    page): their first look is recorded, for the time-to-first-look figures."""
    if request.status is not Status.PENDING or not any(
        user.name in s.approvers or user.name in s.escalate_to for s in request.stages
    ):
        return
    with svc.uow() as uow:
        if uow.flow.seen(request.id, user.name, channel, svc.clock.now()):
            uow.commit()


def cancel_request(svc: Services, user: User, request_id: str, comment: str) -> Request:
    user.require_enabled("cancel a request")
    return _change(
        svc,
        lambda uow: uow.requests.get(request_id, for_update=True),
        lambda request, now: request.cancel(user.name, user.admin, now, comment),
    )


def revoke_grant(svc: Services, user: User, grant_id: str, comment: str) -> Request:
    user.require_enabled("revoke a grant")
    return _change(
        svc,
        lambda uow: uow.requests.get_by_grant(grant_id, for_update=True),
        lambda request, now: request.revoke(user.name, user.admin, now, comment),
    )


def _change(
    svc: Services,
    load: Callable[[UnitOfWork], Request],
    command: Callable[[Request, datetime], list[DomainEvent]],
) -> Request:
    """One unit of work: load the request (locked), run a domain command on it, save
    the state with its audit events and outbox rows, commit, then publish."""
    with svc.uow() as uow:
        now = svc.clock.now()
        request = load(uow)
        version = request.version
        save_changes(svc, uow, now, request, version, command(request, now))
        uow.commit()
    publish_changes(svc, uow)
    return request


@dataclass(frozen=True)
class Redemption:
    request: Request
    grant_id: str
    uses_left: int


def redeem_grant(svc: Services, user: User, token: str, action: Action) -> Redemption:
    """Consume one use of a grant for exactly the approved action, atomically.

    A token that does not verify is refused before anything is read. Any other refusal
    (another action, expired, revoked, used up) is decided by the domain and recorded
    in the audit log as an attempt, in its own transaction. The domain takes the use;
    saving the request stores it, and refuses (``Conflict``) if anyone else changed the
    request or its grant since it was read, so each use goes to one caller only."""
    user.require_enabled("redeem a grant")
    claims = svc.signer.verify(token)  # GrantRefused on a forged, malformed or expired token
    digest = action.digest
    try:
        with svc.uow() as uow:
            now = svc.clock.now()
            try:
                request = uow.requests.get(str(claims["rid"]), for_update=True)
            except NotFound:
                raise GrantRefused("unknown_grant", "no such grant") from None
            if request.grant is None or request.grant.id != claims.get("jti"):
                raise GrantRefused("unknown_grant", "no such grant")
            version = request.version
            events = request.redeem(digest, user.name, now)
            save_changes(svc, uow, now, request, version, events)
            uow.commit()
    except GrantRefused as refusal:
        _record_refusal(svc, user, claims, refusal.reason, digest)
        raise
    publish_changes(svc, uow)
    assert request.grant is not None
    return Redemption(request, request.grant.id, request.grant.uses_left)


def _record_refusal(
    svc: Services, user: User, claims: Mapping[str, Any], reason: str, digest: str
) -> None:
    with svc.uow() as uow:
        uow.audit.append(
            svc.clock.now(),
            str(claims.get("rid")),
            GrantRefusal(
                actor=user.name, grant_id=claims.get("jti"), reason=reason, action_digest=digest
            ),
        )
        uow.commit()
