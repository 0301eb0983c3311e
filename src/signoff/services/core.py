"""The use cases. Each runs in one unit of work: load, call the domain, then store the
new state, its audit events and its outbox rows together, and commit once."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from signoff.domain.actions import Action
from signoff.domain.errors import (
    GrantRefused,
    InvalidInput,
    LinkRefused,
    NotFound,
    Unauthenticated,
)
from signoff.domain.identity import Directory, User
from signoff.domain.policy import Decision as PolicyDecision
from signoff.domain.policy import EvaluationInput, Outcome, PolicySet
from signoff.domain.requests import Decision, Happened, Request, StagePlan, Status
from signoff.domain.sql import analyse
from signoff.domain.sql import describe as describe_sql
from signoff.services.ports import Clock, EventBus, UnitOfWork, UnitOfWorkFactory

# Events that people should hear about; the notification work reads these outbox rows.
NOTIFY_EVENTS = frozenset(
    {
        "request.submitted",
        "stage.advanced",
        "stage.escalated",
        "request.reminded",
        "request.approved",
        "request.denied",
        "request.cancelled",
        "request.revoked",
        "request.executed",
        "request.failed",
        "request.timed_out",
        "grant.expiring",
        "request.expired",
    }
)


def audiences(request: Request, ev: Happened) -> list[tuple[str, list[str]]]:
    """Who should hear of an event, as (audience, people): approvers when their vote is
    wanted (and the requester too when their request is escalated), else the requester."""
    if ev.type in ("request.submitted", "stage.advanced"):
        return [("approvers", sorted(request.awaiting()))]
    if ev.type == "stage.escalated":
        added = list(ev.payload.get("added", []))
        return [("approvers", added), ("requester", [request.requester])]
    if ev.type == "request.reminded":
        return [("approvers", list(ev.payload.get("to", [])))]
    return [("requester", [request.requester])]


def digest_slot(now: datetime, every: timedelta) -> datetime:
    """The end of the digest window ``now`` falls in: windows are aligned on the epoch,
    so everything asked within one window leaves together."""
    windows = -(-(now - EPOCH) // every)  # ceiling division
    return EPOCH + windows * every


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


MAX_REASON = 4000
MAX_COMMENT = 4000


class GrantSigner(Protocol):
    def issue(self, request: Request) -> str: ...
    def verify(self, token: str) -> dict[str, Any]: ...


class Observer(Protocol):
    """Metrics hook: told of every committed decision."""

    def decided(self, request: Request) -> None: ...
    def submitted(self, request: Request) -> None: ...
    def fired(self, event: str) -> None: ...
    def delivery(self, channel: str, outcome: str) -> None: ...
    def executed(self, target: str, outcome: str, seconds: float) -> None: ...


class NullObserver:
    def decided(self, request: Request) -> None:
        pass

    def submitted(self, request: Request) -> None:
        pass

    def fired(self, event: str) -> None:
        pass

    def delivery(self, channel: str, outcome: str) -> None:
        pass

    def executed(self, target: str, outcome: str, seconds: float) -> None:
        pass


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


@dataclass
class Services:
    """Everything the use cases depend on, built once by bootstrap."""

    uow: UnitOfWorkFactory
    clock: Clock
    directory: Directory
    policies: Callable[[], PolicySet]
    signer: GrantSigner
    bus: EventBus
    observer: Observer = field(default_factory=NullObserver)
    new_id: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))
    token_cache: TokenCache = field(default_factory=lambda: TokenCache())
    max_pending: timedelta = timedelta(days=7)
    channels: tuple[str, ...] = ("log",)
    # Channels that keep one message per request up to date (Slack): told of every change.
    tracking_channels: frozenset[str] = frozenset()
    # Channels that reach each person on their own (email, direct messages).
    personal_channels: frozenset[str] = frozenset()
    # Raises InvalidInput when an action cannot run on its target as given (a configured
    # executor's check), so nobody is asked to approve what could not run.
    check_action: Callable[[Action], None] = field(default=lambda action: None)
    # Called after a commit that wrote outbox rows: the worker delivers at once rather
    # than at its next interval.
    wake_dispatcher: Callable[[], None] = field(default=lambda: None)


def record_changes(
    svc: Services, uow: UnitOfWork, now: datetime, request: Request, events: list[Happened]
) -> None:
    """Audit every event and, in the same transaction as the state change, write the
    outbox rows that tell people of it.

    Approvers are told on the request's channels (its policy's, else the server's); under
    a digest policy their rows wait for the end of the digest window, one row per person
    on personal channels so the dispatcher can send each person one message. The
    requester is told on the channels their profile prefers, else the request's.
    Channels that keep one message up to date get a row for the last change of the
    transaction, whoever it concerns."""
    channels = request.notify or svc.channels
    told: set[str] = set()
    last: dict[str, Any] = {}
    for ev in events:
        audited = uow.audit.append(now, ev.actor, ev.type, request.id, ev.payload)
        last = _message(request, ev, audited.seq)
        groups = audiences(request, ev) if ev.type in NOTIFY_EVENTS else []
        for audience, to in groups:
            if not to:
                continue  # e.g. no approver hears of a request a policy decided outright
            every = request.digest_every if audience == "approvers" else None
            slot = digest_slot(now, every) if every else None
            for channel in _channels_for(svc, request, audience):
                told.add(channel)
                if slot is not None and channel in svc.personal_channels:
                    for person in to:
                        row = {**last, "audience": audience, "to": [person], "digest": True}
                        uow.outbox.add(channel, request.id, row, now, not_before=slot)
                else:
                    row = {**last, "audience": audience, "to": to}
                    uow.outbox.add(channel, request.id, row, now, not_before=slot)
    for channel in channels:
        if channel in svc.tracking_channels and channel not in told and last:
            uow.outbox.add(channel, request.id, {**last, "audience": "watchers", "to": []}, now)
    uow.touched.add(request.id)


def _message(request: Request, ev: Happened, seq: int) -> dict[str, Any]:
    analysis = analyse(request.action.params)
    return {
        "event": ev.type,
        "audit_seq": seq,
        "status": request.status.value,
        "actor": ev.actor,
        "details": _details(ev),
        "request": {
            "id": request.id,
            "requester": request.requester,
            "action": {
                "type": request.action.type,
                "target": request.action.target,
                "params": _preview(request.action.params),
            },
            "reason": request.reason,
            "ticket": request.ticket,
            "policy": request.policy_name,
            "analysis": describe_sql(analysis["sql"]) if "sql" in analysis else None,
            "grant": (
                {
                    "expires_at": request.grant.expires_at.isoformat(),
                    "uses_left": request.grant.uses_left,
                }
                if request.grant is not None
                else None
            ),
        },
    }


def _channels_for(svc: Services, request: Request, audience: str) -> tuple[str, ...]:
    if audience == "requester":
        user = svc.directory.users.get(request.requester)
        preferred = tuple(c for c in (user.notify if user else ()) if c in svc.channels)
        if preferred:
            return preferred
    return request.notify or svc.channels


def _details(ev: Happened) -> dict[str, Any]:
    """What a message about this event may say beyond the request: who, why, when."""
    keep = (
        "by",
        "comment",
        "expires_at",
        "uses_left",
        "name",
        "stage",
        "added",
        "reminder",
        "summary",
    )
    return {k: ev.payload[k] for k in keep if k in ev.payload}


def save_changes(
    svc: Services,
    uow: UnitOfWork,
    now: datetime,
    request: Request,
    version: int,
    events: list[Happened],
) -> None:
    """Store a request changed by a domain command (if it was still at ``version``),
    with its audit events and outbox rows."""
    uow.requests.save(request, version)
    if events:
        record_changes(svc, uow, now, request, events)


def _preview(params: dict[str, Any], limit: int = 2000) -> dict[str, str]:
    """Params for messages: every value as text, each cut to ``limit`` characters."""
    out = {}
    for k, v in params.items():
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        out[str(k)] = text if len(text) <= limit else text[:limit] + "…"
    return out


def publish_changes(svc: Services, uow: UnitOfWork) -> None:
    """After commit: wake live streams of the changed requests, and the dispatcher."""
    for rid in uow.touched:
        svc.bus.publish(rid)
    if uow.touched:
        svc.wake_dispatcher()


def evaluation_input(
    svc: Services,
    user: User,
    action: Action,
    context: Mapping[str, Any],
    ticket: str | None,
) -> EvaluationInput:
    labels = context.get("labels") or {}
    risk = context.get("risk")
    return EvaluationInput(
        action=action,
        requester=user,
        now=svc.clock.now(),
        context=context,
        labels=labels if isinstance(labels, dict) else {},
        risk=risk if isinstance(risk, str) else None,
        ticket=ticket,
    )


def explain(
    svc: Services, user: User, action: Action, context: Mapping[str, Any], ticket: str | None
) -> PolicyDecision:
    return svc.policies().explain(evaluation_input(svc, user, action, context, ticket))


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
) -> tuple[Request, bool]:
    """Submit a request; or, when the same requester already has the same action pending
    under review, fold this ask into that request (True) instead of asking again."""
    svc.check_action(action)
    now = svc.clock.now()
    policies = svc.policies()
    decision = policies.evaluate(evaluation_input(svc, user, action, context, ticket))
    policy = decision.policy
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason is longer than {MAX_REASON} characters", field="reason")
    if policy.rules.reason_required and not reason:
        raise InvalidInput(f"policy {policy.name!r} requires a reason", field="reason")
    pattern = policy.rules.ticket_regex()
    if pattern is not None and (not ticket or not re.fullmatch(pattern, ticket)):
        raise InvalidInput(
            f"policy {policy.name!r} requires a ticket matching {policy.rules.ticket_pattern!r}",
            field="ticket",
        )
    stages = [
        StagePlan(
            s.name,
            svc.directory.resolve(s.users, s.groups),
            s.quorum,
            s.timeout,
            s.reminders,
            svc.directory.resolve(s.escalate_users, s.escalate_groups),
            s.escalation_timeout,
        )
        for s in policy.stages
    ]
    request = Request(
        id=svc.new_id(),
        requester=user.name,
        action=action,
        reason=reason,
        ticket=ticket,
        context=context,
        policy_name=policy.name,
        policy_set_digest=policies.digest,
        stages=stages if decision.outcome is Outcome.REVIEW else [],
        grant_ttl=policy.grant.ttl,
        grant_uses=policy.grant.uses,
        read_only=policy.grant.read_only,
        executors=svc.directory.resolve(policy.grant.executor_users, policy.grant.executor_groups),
        created_at=now,
        on_timeout=policy.on_timeout,
        expires_at=now + svc.max_pending,
        notify=policy.notify,
        digest_every=policy.digest_every,
    )
    events = request.start(now)
    if decision.outcome is Outcome.ALLOW:
        events += request.approve("policy", now, svc.new_id)
    elif decision.outcome is Outcome.DENY:
        events += request.deny_by_policy(now, decision.error or decision.reason)
    with svc.uow() as uow:
        if decision.outcome is Outcome.REVIEW:
            twin = uow.requests.pending_duplicate(user.name, action.digest)
            if twin is not None:
                existing = uow.requests.get(twin, for_update=True)
                version = existing.version
                save_changes(svc, uow, now, existing, version, existing.fold(reason))
                uow.commit()
                publish_changes(svc, uow)
                return existing, True
        uow.requests.add(request)
        record_changes(svc, uow, now, request, events)
        uow.commit()
    svc.observer.submitted(request)
    if request.status is not Status.PENDING:
        svc.observer.decided(request)
    publish_changes(svc, uow)
    return request, False


def get_request(svc: Services, request_id: str) -> Request:
    with svc.uow(write=False) as uow:
        return uow.requests.get(request_id)


def cast_vote(
    svc: Services, user: User, request_id: str, decision: Decision, comment: str
) -> Request:
    return _vote(svc, user, request_id, decision, comment, link_id=None)


def vote_by_link(svc: Services, claims: Mapping[str, Any], comment: str) -> Request:
    """Vote as the approver a verified link was made for; the link is used up only if
    the vote is recorded (same transaction)."""
    user = svc.directory.user(str(claims["sub"]))
    return _vote(
        svc, user, str(claims["rid"]), Decision(str(claims["dec"])), comment, str(claims["jti"])
    )


def _vote(
    svc: Services,
    user: User,
    request_id: str,
    decision: Decision,
    comment: str,
    link_id: str | None,
) -> Request:
    if len(comment) > MAX_COMMENT:
        raise InvalidInput(f"comment is longer than {MAX_COMMENT} characters", field="comment")
    with svc.uow() as uow:
        now = svc.clock.now()
        if link_id is not None and not uow.links.use(link_id, now):
            raise LinkRefused("used", "this link has already been used")
        request = uow.requests.get(request_id, for_update=True)
        version = request.version
        events = request.vote(user.name, decision, comment, now, svc.new_id)
        save_changes(svc, uow, now, request, version, events)
        uow.commit()
    if request.status is not Status.PENDING:
        svc.observer.decided(request)
    publish_changes(svc, uow)
    return request


def cancel_request(svc: Services, user: User, request_id: str, comment: str) -> Request:
    with svc.uow() as uow:
        now = svc.clock.now()
        request = uow.requests.get(request_id, for_update=True)
        version = request.version
        events = request.cancel(user.name, user.admin, now, comment)
        save_changes(svc, uow, now, request, version, events)
        uow.commit()
    publish_changes(svc, uow)
    return request


def revoke_grant(svc: Services, user: User, grant_id: str, comment: str) -> Request:
    with svc.uow() as uow:
        now = svc.clock.now()
        request = uow.requests.get_by_grant(grant_id, for_update=True)
        version = request.version
        events = request.revoke(user.name, user.admin, now, comment)
        save_changes(svc, uow, now, request, version, events)
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
    in the audit log as an attempt, in its own transaction."""
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
            # The domain said yes for the state it read; this conditional UPDATE makes
            # the last use go to exactly one caller, whatever runs concurrently.
            if not uow.requests.consume_grant_use(request.grant.id, now):
                raise GrantRefused("used_up", "the grant has no uses left")
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
            user.name,
            "grant.refused",
            str(claims.get("rid")),
            {"grant_id": claims.get("jti"), "reason": reason, "action_digest": digest},
        )
        uow.commit()


def create_token(svc: Services, user_name: str, label: str = "") -> str:
    """A new API token for a user; the plain token is returned once and stored hashed."""
    svc.directory.user(user_name)
    token = "so_" + secrets.token_urlsafe(32)
    with svc.uow() as uow:
        now = svc.clock.now()
        uow.tokens.add(svc.new_id(), user_name, hash_token(token), label, now)
        uow.audit.append(now, "admin", "token.created", None, {"user": user_name, "label": label})
        uow.commit()
    return token


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def authenticate_cached(svc: Services, token: str) -> User | None:
    """The user of a recently verified token, without touching the database."""
    name = svc.token_cache.get(hash_token(token))
    return svc.directory.users.get(name) if name is not None else None


def authenticate(svc: Services, token: str) -> User:
    cached = authenticate_cached(svc, token)
    if cached is not None:
        return cached
    digest = hash_token(token)
    with svc.uow(write=False) as uow:
        name = uow.tokens.user_for(digest)
    if name is None or name not in svc.directory.users:
        raise Unauthenticated("the API token is not valid")
    svc.token_cache.put(digest, name)
    return svc.directory.user(name)
