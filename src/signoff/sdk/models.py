"""What the SDK returns: frozen values read from the API's JSON, each keeping that JSON
whole in ``raw`` (fields a newer server adds are there before the SDK names them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from signoff.domain.actions import Action
from signoff.domain.requests import FINAL, Decision, Status, Vote


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _when(value: Any) -> datetime:
    found = _time(value)
    if found is None:
        raise ValueError(f"not a time: {value!r}")
    return found


@dataclass(frozen=True)
class Grant:
    """The permission an approval issues: ``token`` (a signed JWT) is shown to the
    requester and admins only, None to anyone else."""

    id: str
    token: str | None
    expires_at: datetime
    uses_total: int
    uses_left: int
    revoked: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Grant:
        return cls(
            id=data["id"],
            token=data.get("token"),
            expires_at=_when(data["expires_at"]),
            uses_total=int(data["uses_total"]),
            uses_left=int(data["uses_left"]),
            revoked=bool(data["revoked"]),
        )


def _vote(data: Mapping[str, Any]) -> Vote:
    """A vote as the domain has it (``signoff.domain.requests.Vote``)."""
    return Vote(
        voter=data["voter"],
        decision=Decision(data["decision"]),
        comment=data.get("comment") or "",
        stage=int(data.get("stage", 0)),
        at=_when(data["at"]),
    )


@dataclass(frozen=True)
class Stage:
    """One stage of a request's review: who may approve now, how many must."""

    name: str
    approvers: tuple[str, ...]
    quorum: int
    approvals: tuple[str, ...]
    escalate_to: tuple[str, ...] = ()
    escalated: bool = False
    timeout_seconds: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stage:
        return cls(
            name=data["name"],
            approvers=tuple(data.get("approvers") or ()),
            quorum=int(data["quorum"]),
            approvals=tuple(data.get("approvals") or ()),
            escalate_to=tuple(data.get("escalate_to") or ()),
            escalated=bool(data.get("escalated")),
            timeout_seconds=data.get("timeout_seconds"),
        )


@dataclass(frozen=True)
class Request:
    """One ask for one action, as the server showed it to the caller.

    ``outcome`` says why it is in its state in one line ("denied by bob: too broad"),
    None while pending; ``grant`` is set once approved."""

    id: str
    status: Status
    requester: str
    action: Action
    action_digest: str
    reason: str
    ticket: str | None
    context: Mapping[str, Any]
    policy: str
    outcome: str | None
    grant: Grant | None
    created_at: datetime
    decided_at: datetime | None
    deadline_at: datetime | None
    current_stage: int
    still_needed: int
    awaiting: tuple[str, ...]
    votes: tuple[Vote, ...]
    stages: tuple[Stage, ...]
    fold_count: int
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def redeemed(self) -> bool:
        """Asked with ``redeem=True``: one use of the grant was spent for the caller."""
        return bool(self.raw.get("redeemed"))

    @property
    def pending(self) -> bool:
        """Still waiting for votes."""
        return self.status is Status.PENDING

    @property
    def approved(self) -> bool:
        """Approved, with a grant that may still be used."""
        return self.status is Status.APPROVED

    @property
    def final(self) -> bool:
        """In a state nothing moves it out of (executed, denied, cancelled, ...)."""
        return self.status in FINAL

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Request:
        a = data["action"]
        return cls(
            id=data["id"],
            status=Status(data["status"]),
            requester=data["requester"],
            action=Action(a["type"], a["target"], dict(a.get("params") or {})),
            action_digest=data["action_digest"],
            reason=data.get("reason") or "",
            ticket=data.get("ticket"),
            context=dict(data.get("context") or {}),
            policy=data.get("policy") or "",
            outcome=data.get("outcome"),
            grant=Grant.from_json(data["grant"]) if data.get("grant") else None,
            created_at=_when(data["created_at"]),
            decided_at=_time(data.get("decided_at")),
            deadline_at=_time(data.get("deadline_at")),
            current_stage=int(data.get("current_stage", 0)),
            still_needed=int(data.get("still_needed", 0)),
            awaiting=tuple(data.get("awaiting") or ()),
            votes=tuple(_vote(v) for v in data.get("votes") or ()),
            stages=tuple(Stage.from_json(s) for s in data.get("stages") or ()),
            fold_count=int(data.get("fold_count", 0)),
            raw=dict(data),
        )


@dataclass(frozen=True)
class RequestPage:
    """A page of requests, newest first; pass ``next_cursor`` back for the next."""

    items: tuple[Request, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequestPage:
        return cls(
            items=tuple(Request.from_json(r) for r in data.get("items") or ()),
            next_cursor=data.get("next_cursor"),
        )


@dataclass(frozen=True)
class Redemption:
    """One use of a grant, spent: what is left of it and the request's state now."""

    request_id: str
    grant_id: str
    uses_left: int
    status: Status

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Redemption:
        return cls(
            request_id=data["request_id"],
            grant_id=data["grant_id"],
            uses_left=int(data["uses_left"]),
            status=Status(data["status"]),
        )


@dataclass(frozen=True)
class Execution:
    """An approved action Signoff ran on its target: ``ok`` (None when no outcome was
    recorded), a one-line ``summary``, the masked ``output`` and its SHA-256."""

    id: str
    request_id: str
    actor: str
    started_at: datetime
    finished_at: datetime | None
    ok: bool | None
    summary: str | None
    output: Mapping[str, Any] | None
    output_digest: str | None
    request_status: Status | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Execution:
        status = data.get("request_status")
        return cls(
            id=data["id"],
            request_id=data["request_id"],
            actor=data["actor"],
            started_at=_when(data["started_at"]),
            finished_at=_time(data.get("finished_at")),
            ok=data.get("ok"),
            summary=data.get("summary"),
            output=data.get("output"),
            output_digest=data.get("output_digest"),
            request_status=Status(status) if status else None,
            raw=dict(data),
        )


@dataclass(frozen=True)
class Identity:
    """Who the token stands for: a person, or a workload with its token's claims."""

    name: str
    email: str | None
    admin: bool
    groups: tuple[str, ...]
    claims: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Identity:
        return cls(
            name=data["name"],
            email=data.get("email"),
            admin=bool(data.get("admin")),
            groups=tuple(data.get("groups") or ()),
            claims=dict(data.get("claims") or {}),
        )
