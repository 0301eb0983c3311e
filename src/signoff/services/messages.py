"""What an outbox row says, as a typed object channels render.

A ``Message`` is built by the use case from the request at the moment of the change
(``notify.message``), stored as JSON in the outbox (its ``payload()``: the same JSON
that signed webhooks deliver, a public contract), and read back by the dispatcher for
the channels (``Message.from_payload``). Channels read attributes, never string keys.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from signoff import commands
from signoff.domain.events import EventType
from signoff.domain.requests import Request, Status
from signoff.domain.sql import analyse
from signoff.domain.sql import describe as describe_sql


@dataclass(frozen=True)
class GrantSummary:
    expires_at: str
    uses_left: int


@dataclass(frozen=True)
class StageSummary:
    """Where the review stands: stage ``number`` of ``of`` (1-based), who may approve in
    it now, and what happens at its deadline (``then``: "escalates", "times out",
    "is denied") if nobody decides."""

    number: int
    of: int
    name: str
    approvers: tuple[str, ...]
    quorum: int
    deadline_at: str | None = None
    then: str | None = None
    escalate_to: tuple[str, ...] = ()
    escalated: bool = False
    # "passkey": votes count only with a passkey, on the request's web page
    approve_with: str | None = None


@dataclass(frozen=True)
class VoteSummary:
    voter: str
    decision: str  # "approved" or "denied"
    comment: str
    stage: int  # 1-based


@dataclass(frozen=True)
class RequestSummary:
    """The request as every message and page shows it (one rendering: see
    ``adapters/channels/messages.context_rows``); params as text, each cut to 2,000
    characters. ``executes``: Signoff itself runs it (its target is configured)."""

    id: str
    requester: str
    type: str
    target: str
    params: dict[str, str]
    reason: str
    ticket: str | None
    policy: str
    analysis: str | None = None
    grant: GrantSummary | None = None
    risk: str | None = None
    links: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    stage: StageSummary | None = None
    votes: tuple[VoteSummary, ...] = ()
    awaiting: tuple[str, ...] = ()
    still_needed: int = 0
    outcome: str | None = None
    executes: bool = False
    # The command lines a person may run about it now ("show", "approve", "deny",
    # "cancel", "execute" or "token" and "redeem"), from ``signoff.commands``.
    commands: dict[str, str] = field(default_factory=dict)


def summarize(request: Request, executes: bool = False, analysis: bool = True) -> RequestSummary:
    """What messages and pages show of a request, as it is now (``analysis``: read its
    SQL too, which lists of many requests skip)."""
    found = analyse(request.action.params) if analysis else {}
    grant = request.grant
    ctx = request.context
    risk = ctx.get("risk")
    links = ctx.get("links")
    labels = ctx.get("labels")
    return RequestSummary(
        id=request.id,
        requester=request.requester,
        type=request.action.type,
        target=request.action.target,
        params=_preview(request.action.params),
        reason=request.reason,
        ticket=request.ticket,
        policy=request.policy_name,
        analysis=describe_sql(found["sql"]) if "sql" in found else None,
        grant=(
            GrantSummary(grant.expires_at.isoformat(), grant.uses_left)
            if grant is not None
            else None
        ),
        risk=risk if isinstance(risk, str) else None,
        links=tuple(str(x) for x in links) if isinstance(links, list) else (),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        stage=_stage(request),
        votes=tuple(
            VoteSummary(v.voter, v.decision.done, v.comment, v.stage + 1) for v in request.votes
        ),
        awaiting=tuple(sorted(request.awaiting())),
        still_needed=request.still_needed(),
        outcome=request.outcome,
        executes=executes,
        commands=_commands(request, executes),
    )


def _commands(request: Request, executes: bool) -> dict[str, str]:
    rid = request.id
    found = {"show": commands.show(rid)}
    if request.status is Status.PENDING:
        if request.step_up_needed() is None:  # a passkey stage is voted on its web page
            found |= {"approve": commands.approve(rid), "deny": commands.deny(rid)}
        found["cancel"] = commands.cancel(rid)
    elif request.status is Status.APPROVED and request.grant is not None:
        if executes:
            found["execute"] = commands.execute(rid)
        else:
            a = request.action
            found["token"] = commands.grant_token(rid)
            redeem = commands.redeem(rid, a.type, a.target, a.params)
            if redeem is not None:
                found["redeem"] = redeem
    return found


def _stage(request: Request) -> StageSummary | None:
    if not request.stages:
        return None
    i = request.current_stage
    plan = request.stages[i]
    deadline = request.deadline_at
    then = None
    if deadline is not None:
        if not request.escalated(i) and plan.escalate_to - plan.approvers:
            then = "escalates"
        else:
            then = "is denied" if request.on_timeout == "deny" else "times out"
    return StageSummary(
        number=i + 1,
        of=len(request.stages),
        name=plan.name,
        approvers=tuple(sorted(request.eligible(i) - {request.requester})),
        quorum=plan.quorum,
        deadline_at=deadline.isoformat() if deadline is not None else None,
        then=then,
        escalate_to=tuple(sorted(plan.escalate_to - plan.approvers - {request.requester})),
        escalated=request.escalated(i) and request.status is Status.PENDING,
        approve_with=plan.approve_with,
    )


def _preview(params: dict[str, Any], limit: int = 2000) -> dict[str, str]:
    """Params for messages: every value as text, each cut to ``limit`` characters."""
    out = {}
    for k, v in params.items():
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        out[str(k)] = text if len(text) <= limit else text[:limit] + "…"
    return out


@dataclass(frozen=True)
class Details:
    """What a message may say about its event beyond the request: who, why, when."""

    by: str | None = None
    comment: str | None = None
    expires_at: str | None = None
    uses_left: int | None = None
    name: str | None = None
    stage: int | None = None
    added: tuple[str, ...] | None = None
    reminder: int | None = None
    summary: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        if self.added is not None:
            out["added"] = list(self.added)
        return out


# Who a message is for: approvers whose vote is wanted, the requester, or (channels that
# keep one message per request up to date) whoever watches it.
APPROVERS, REQUESTER, WATCHERS = "approvers", "requester", "watchers"


@dataclass(frozen=True)
class Message:
    event: str  # an EventType's value; kept as text so a newer name still reads
    audit_seq: int
    status: str
    actor: str
    request: RequestSummary
    details: Details = field(default_factory=Details)
    audience: str = WATCHERS
    to: tuple[str, ...] = ()
    digest: bool = False

    @property
    def kind(self) -> EventType | None:
        """The event, or None for a name this version does not know."""
        try:
            return EventType(self.event)
        except ValueError:
            return None

    @property
    def asks_to_vote(self) -> bool:
        """Whether it asks approvers to act (pointless once the request is decided)."""
        return self.audience == APPROVERS

    def to_people(self, audience: str, people: list[str], digest: bool = False) -> Message:
        return replace(self, audience=audience, to=tuple(people), digest=digest)

    def payload(self) -> dict[str, Any]:
        """The outbox row's JSON (and a signed webhook's body)."""
        r = self.request
        out: dict[str, Any] = {
            "event": self.event,
            "audit_seq": self.audit_seq,
            "status": self.status,
            "actor": self.actor,
            "details": self.details.as_dict(),
            "request": {
                "id": r.id,
                "requester": r.requester,
                "action": {"type": r.type, "target": r.target, "params": dict(r.params)},
                "reason": r.reason,
                "ticket": r.ticket,
                "policy": r.policy,
                "analysis": r.analysis,
                "grant": asdict(r.grant) if r.grant is not None else None,
                "context": {"risk": r.risk, "links": list(r.links), "labels": dict(r.labels)},
                "stage": _stage_json(r.stage),
                "votes": [asdict(v) for v in r.votes],
                "awaiting": list(r.awaiting),
                "still_needed": r.still_needed,
                "outcome": r.outcome,
                "executes": r.executes,
                "commands": dict(r.commands),
            },
            "audience": self.audience,
            "to": list(self.to),
        }
        if self.digest:
            out["digest"] = True
        return out

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> Message:
        r = p["request"]
        a = r["action"]
        g = r.get("grant")
        d = dict(p.get("details") or {})
        if "added" in d:
            d["added"] = tuple(d["added"])
        known = {k: v for k, v in d.items() if k in Details.__dataclass_fields__}
        ctx = r.get("context") or {}
        return cls(
            event=str(p["event"]),
            audit_seq=int(p.get("audit_seq", 0)),
            status=str(p["status"]),
            actor=str(p.get("actor", "")),
            request=RequestSummary(
                id=str(r["id"]),
                requester=str(r["requester"]),
                type=str(a["type"]),
                target=str(a["target"]),
                params={str(k): str(v) for k, v in (a.get("params") or {}).items()},
                reason=str(r.get("reason") or ""),
                ticket=r.get("ticket"),
                policy=str(r.get("policy", "")),
                analysis=r.get("analysis"),
                grant=GrantSummary(str(g["expires_at"]), int(g["uses_left"])) if g else None,
                risk=ctx.get("risk"),
                links=tuple(ctx.get("links") or ()),
                labels=dict(ctx.get("labels") or {}),
                stage=_stage_from(r.get("stage")),
                votes=tuple(VoteSummary(**v) for v in r.get("votes") or ()),
                awaiting=tuple(r.get("awaiting") or ()),
                still_needed=int(r.get("still_needed") or 0),
                outcome=r.get("outcome"),
                executes=bool(r.get("executes", False)),
                commands={str(k): str(v) for k, v in (r.get("commands") or {}).items()},
            ),
            details=Details(**known),
            audience=str(p.get("audience", WATCHERS)),
            to=tuple(p.get("to") or ()),
            digest=bool(p.get("digest", False)),
        )


def _stage_json(stage: StageSummary | None) -> dict[str, Any] | None:
    if stage is None:
        return None
    out = asdict(stage)
    out["approvers"] = list(stage.approvers)
    out["escalate_to"] = list(stage.escalate_to)
    return out


def _stage_from(d: dict[str, Any] | None) -> StageSummary | None:
    if not d:
        return None
    known = {k: v for k, v in d.items() if k in StageSummary.__dataclass_fields__}
    known["approvers"] = tuple(known.get("approvers") or ())
    known["escalate_to"] = tuple(known.get("escalate_to") or ())
    return StageSummary(**known)
