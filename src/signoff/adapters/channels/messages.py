"""What every channel says about an event, as plain text; each channel adds its markup.

Built from an outbox row's payload only (see ``core.record_changes``), so a message
reads the same whenever it is delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from signoff.adapters.signing import VoteLinkSigner
from signoff.domain.events import EventType
from signoff.services.ports import asks_to_vote


def event_of(p: dict[str, Any]) -> EventType | None:
    """The event an outbox row's payload is about (None: a name this version does not
    know)."""
    try:
        return EventType(str(p.get("event")))
    except ValueError:
        return None


HEADLINES: dict[EventType, str] = {
    EventType.REQUEST_SUBMITTED: "Approval needed",
    EventType.STAGE_ADVANCED: "Approval needed (next stage)",
    EventType.STAGE_ESCALATED: "Escalated to you: approval needed",
    EventType.REQUEST_REMINDED: "Reminder: approval needed",
    EventType.REQUEST_APPROVED: "Your request was approved",
    EventType.REQUEST_DENIED: "Your request was denied",
    EventType.REQUEST_CANCELLED: "Request cancelled",
    EventType.REQUEST_REVOKED: "Your grant was revoked",
    EventType.REQUEST_EXECUTED: "Your grant was used",
    EventType.REQUEST_FAILED: "Your action failed",
    EventType.REQUEST_TIMED_OUT: "Your request timed out",
    EventType.GRANT_EXPIRING: "Your grant expires soon",
    EventType.REQUEST_EXPIRED: "Your grant expired unused",
}


def headline(p: dict[str, Any]) -> str:
    event = event_of(p)
    if event is EventType.STAGE_ESCALATED and not asks_to_vote(p):
        return "Your request was escalated"
    found = HEADLINES.get(event) if event is not None else None
    return found if found is not None else str(p.get("event"))


# A shared room hears of what needs a vote and of how it ended, not of a requester's
# grant bookkeeping.
ROOM_HEADLINES: dict[EventType, str] = {
    EventType.REQUEST_APPROVED: "Approved",
    EventType.REQUEST_DENIED: "Denied",
    EventType.REQUEST_CANCELLED: "Cancelled",
    EventType.REQUEST_TIMED_OUT: "Timed out",
}
ROOM_EVENTS = frozenset(ROOM_HEADLINES)


def for_room(p: dict[str, Any]) -> bool:
    """Whether a shared room (Teams channel, Apprise) should hear of this."""
    return asks_to_vote(p) or event_of(p) in ROOM_EVENTS


def title(p: dict[str, Any], room: bool = False) -> str:
    """One line: what happened and to which action; ``room``: worded for a shared
    channel rather than for the requester."""
    a = p["request"]["action"]
    event = event_of(p)
    head = headline(p)
    if room and event is not None and event in ROOM_HEADLINES:
        head = ROOM_HEADLINES[event]
    return f"{head}: {a['type']} on {a['target']}"


def context_rows(p: dict[str, Any]) -> list[tuple[str, str]]:
    r = p["request"]
    a = r["action"]
    rows = [
        ("Action", f"{a['type']} on {a['target']}"),
        ("Requester", r["requester"]),
        ("Reason", r.get("reason") or "-"),
        ("Ticket", r.get("ticket") or "-"),
        ("Policy", r["policy"]),
        ("Status", p["status"]),
    ]
    if r.get("analysis"):
        rows.append(("Analysis", r["analysis"]))
    return rows


def view_url(public_url: str, p: dict[str, Any]) -> str:
    return f"{public_url.rstrip('/')}/v1/requests/{p['request']['id']}"


def news(p: dict[str, Any]) -> list[str]:
    """What happened, for the requester: who decided and why, and what to do next."""
    event = event_of(p)
    d: dict[str, Any] = p.get("details") or {}
    r = p["request"]
    a = r["action"]
    comment = f": {d['comment']}" if d.get("comment") else ""
    if event is EventType.REQUEST_APPROVED:
        grant = r.get("grant") or {}
        by = "by policy" if p.get("actor") == "policy" else f"by {p.get('actor')}"
        lines = [f"Approved {by}."]
        if grant:
            lines.append(f"Your grant: {grant['uses_left']} use(s) until {grant['expires_at']}.")
        lines += [
            "To use it, get the token and redeem it for exactly this action:",
            f"  signoff request show {r['id']}",
            f"  signoff grant redeem TOKEN --type {a['type']} --target {a['target']}",
        ]
        return lines
    if event is EventType.REQUEST_DENIED:
        denier = d.get("by") or p.get("actor")
        if denier == "timeout":
            return [f"Denied: nobody approved in time{comment}."]
        if denier == "policy":
            return [f"Denied by policy {r['policy']}{comment}."]
        return [f"Denied by {denier}{comment}."]
    if event is EventType.REQUEST_CANCELLED:
        return [f"Cancelled by {p.get('actor')}{comment}."]
    if event is EventType.REQUEST_REVOKED:
        return [f"The grant was revoked by {p.get('actor')}{comment}."]
    if event is EventType.REQUEST_EXECUTED:
        done = f" ({d['summary']})" if d.get("summary") else ""
        return [f"The grant has been used up{done}."]
    if event is EventType.REQUEST_FAILED:
        return [f"Signoff ran the approved action and it failed: {d.get('summary')}."]
    if event is EventType.REQUEST_TIMED_OUT:
        return [f"Timed out{comment}."]
    if event is EventType.STAGE_ESCALATED:
        added = ", ".join(d.get("added") or []) or "more approvers"
        return [f"Nobody answered in time; {added} can now approve it too."]
    if event is EventType.GRANT_EXPIRING:
        return [
            f"Your unused grant expires at {d.get('expires_at')} "
            f"({d.get('uses_left')} use(s) left)."
        ]
    if event is EventType.REQUEST_EXPIRED:
        return ["The grant expired before it was used; ask again if you still need it."]
    return []


@dataclass(frozen=True)
class VoteLinks:
    """Each approver's own signed Approve and Deny links (bound to them, the request and
    the decision; expiring; single-use), for channels that reach one person."""

    signer: VoteLinkSigner
    clock_now: Callable[[], datetime]
    public_url: str
    ttl: timedelta

    def __call__(self, person: str, p: dict[str, Any]) -> dict[str, str] | None:
        """This person's links, when the message asks them to vote."""
        if not asks_to_vote(p):
            return None
        expires = self.clock_now() + self.ttl
        rid = p["request"]["id"]
        base = self.public_url.rstrip("/")
        return {
            d: f"{base}/links/{self.signer.issue(person, rid, d, expires)}"
            for d in ("approve", "deny")
        }
