"""Who hears of what, on which channel, and what the outbox row says.

Message text is the channels' business (``adapters/channels/messages.py``); this module
decides the audience of each event (approvers whose vote is wanted, or the requester),
the channels each audience is told on, the digest window a row waits for, and the
payload an outbox row carries, built from the request at the moment of the change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from signoff.domain.requests import Happened, Request
from signoff.domain.sql import analyse
from signoff.domain.sql import describe as describe_sql

if TYPE_CHECKING:
    from signoff.services.dependencies import Services

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

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def audiences(request: Request, ev: Happened) -> list[tuple[str, list[str]]]:
    """Who should hear of an event, as (audience, people): approvers when their vote is
    wanted (and the requester too when their request is escalated), else the requester."""
    if ev.type not in NOTIFY_EVENTS:
        return []
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


def channels_for(svc: Services, request: Request, audience: str) -> tuple[str, ...]:
    """The requester is told on the channels their profile prefers (among those
    configured), else everyone on the request's channels (its policy's, else the
    server's)."""
    if audience == "requester":
        user = svc.directory.users.get(request.requester)
        preferred = tuple(c for c in (user.notify if user else ()) if c in svc.channels)
        if preferred:
            return preferred
    return request.notify or svc.channels


def message(request: Request, ev: Happened, seq: int) -> dict[str, Any]:
    """An outbox row's payload: the event and the request as it was at that moment."""
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


def _preview(params: dict[str, Any], limit: int = 2000) -> dict[str, str]:
    """Params for messages: every value as text, each cut to ``limit`` characters."""
    out = {}
    for k, v in params.items():
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        out[str(k)] = text if len(text) <= limit else text[:limit] + "…"
    return out
