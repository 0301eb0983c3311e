"""What every channel says about an event, as plain text; each channel adds its markup.

Built from the typed ``Message`` of an outbox row only (see ``services.messages``), so a
message reads the same whenever it is delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from signoff.adapters.signing import VoteLinkSigner
from signoff.domain.events import EventType
from signoff.services.messages import Message

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


def headline(m: Message) -> str:
    event = m.kind
    if event is EventType.STAGE_ESCALATED and not m.asks_to_vote:
        return "Your request was escalated"
    found = HEADLINES.get(event) if event is not None else None
    return found if found is not None else m.event


# A shared room hears of what needs a vote and of how it ended, not of a requester's
# grant bookkeeping.
ROOM_HEADLINES: dict[EventType, str] = {
    EventType.REQUEST_APPROVED: "Approved",
    EventType.REQUEST_DENIED: "Denied",
    EventType.REQUEST_CANCELLED: "Cancelled",
    EventType.REQUEST_TIMED_OUT: "Timed out",
}
ROOM_EVENTS = frozenset(ROOM_HEADLINES)


def for_room(m: Message) -> bool:
    """Whether a shared room (Teams channel, Apprise) should hear of this."""
    return m.asks_to_vote or m.kind in ROOM_EVENTS


def title(m: Message, room: bool = False) -> str:
    """One line: what happened and to which action; ``room``: worded for a shared
    channel rather than for the requester."""
    event = m.kind
    head = headline(m)
    if room and event is not None and event in ROOM_HEADLINES:
        head = ROOM_HEADLINES[event]
    return f"{head}: {m.request.type} on {m.request.target}"


def context_rows(m: Message) -> list[tuple[str, str]]:
    r = m.request
    rows = [
        ("Action", f"{r.type} on {r.target}"),
        ("Requester", r.requester),
        ("Reason", r.reason or "-"),
        ("Ticket", r.ticket or "-"),
        ("Policy", r.policy),
        ("Status", m.status),
    ]
    if r.analysis:
        rows.append(("Analysis", r.analysis))
    return rows


def view_url(public_url: str, m: Message) -> str:
    return f"{public_url.rstrip('/')}/v1/requests/{m.request.id}"


def news(m: Message) -> list[str]:
    """What happened, for the requester: who decided and why, and what to do next."""
    event = m.kind
    d = m.details
    r = m.request
    comment = f": {d.comment}" if d.comment else ""
    if event is EventType.REQUEST_APPROVED:
        by = "by policy" if m.actor == "policy" else f"by {m.actor}"
        lines = [f"Approved {by}."]
        if r.grant is not None:
            lines.append(f"Your grant: {r.grant.uses_left} use(s) until {r.grant.expires_at}.")
        lines += [
            "To use it, get the token and redeem it for exactly this action:",
            f"  signoff request show {r.id}",
            f"  signoff grant redeem TOKEN --type {r.type} --target {r.target}",
        ]
        return lines
    if event is EventType.REQUEST_DENIED:
        denier = d.by or m.actor
        if denier == "timeout":
            return [f"Denied: nobody approved in time{comment}."]
        if denier == "policy":
            return [f"Denied by policy {r.policy}{comment}."]
        return [f"Denied by {denier}{comment}."]
    if event is EventType.REQUEST_CANCELLED:
        return [f"Cancelled by {m.actor}{comment}."]
    if event is EventType.REQUEST_REVOKED:
        return [f"The grant was revoked by {m.actor}{comment}."]
    if event is EventType.REQUEST_EXECUTED:
        done = f" ({d.summary})" if d.summary else ""
        return [f"The grant has been used up{done}."]
    if event is EventType.REQUEST_FAILED:
        return [f"Signoff ran the approved action and it failed: {d.summary}."]
    if event is EventType.REQUEST_TIMED_OUT:
        return [f"Timed out{comment}."]
    if event is EventType.STAGE_ESCALATED:
        added = ", ".join(d.added or ()) or "more approvers"
        return [f"Nobody answered in time; {added} can now approve it too."]
    if event is EventType.GRANT_EXPIRING:
        return [f"Your unused grant expires at {d.expires_at} ({d.uses_left} use(s) left)."]
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

    def __call__(self, person: str, m: Message) -> dict[str, str] | None:
        """This person's links, when the message asks them to vote."""
        if not m.asks_to_vote:
            return None
        expires = self.clock_now() + self.ttl
        rid = m.request.id
        base = self.public_url.rstrip("/")
        return {
            d: f"{base}/links/{self.signer.issue(person, rid, d, expires)}"
            for d in ("approve", "deny")
        }
