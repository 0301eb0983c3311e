"""What an outbox row says, as a typed object channels render.

A ``Message`` is built by the use case from the request at the moment of the change
(``notify.message``), stored as JSON in the outbox (its ``payload()``: the same JSON
that signed webhooks deliver, a public contract), and read back by the dispatcher for
the channels (``Message.from_payload``). Channels read attributes, never string keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from signoff.domain.events import EventType


@dataclass(frozen=True)
class GrantSummary:
    expires_at: str
    uses_left: int


@dataclass(frozen=True)
class RequestSummary:
    """The request as the message shows it; params as text, each cut to 2,000 chars."""

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
            ),
            details=Details(**known),
            audience=str(p.get("audience", WATCHERS)),
            to=tuple(p.get("to") or ()),
            digest=bool(p.get("digest", False)),
        )
