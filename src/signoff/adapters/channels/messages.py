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
from signoff.services.ports import asks_to_vote

HEADLINES = {
    "request.submitted": "Approval needed",
    "stage.advanced": "Approval needed (next stage)",
    "stage.escalated": "Escalated to you: approval needed",
    "request.reminded": "Reminder: approval needed",
    "request.approved": "Your request was approved",
    "request.denied": "Your request was denied",
    "request.cancelled": "Request cancelled",
    "request.revoked": "Your grant was revoked",
    "request.executed": "Your grant was used",
    "request.failed": "Your action failed",
    "request.timed_out": "Your request timed out",
    "grant.expiring": "Your grant expires soon",
    "request.expired": "Your grant expired unused",
}


def headline(p: dict[str, Any]) -> str:
    if p.get("event") == "stage.escalated" and not asks_to_vote(p):
        return "Your request was escalated"
    return HEADLINES.get(str(p.get("event")), str(p.get("event")))


# A shared room hears of what needs a vote and of how it ended, not of a requester's
# grant bookkeeping.
ROOM_EVENTS = frozenset(
    {"request.approved", "request.denied", "request.cancelled", "request.timed_out"}
)


def for_room(p: dict[str, Any]) -> bool:
    """Whether a shared room (Teams channel, Apprise) should hear of this."""
    return asks_to_vote(p) or p.get("event") in ROOM_EVENTS


ROOM_HEADLINES = {
    "request.approved": "Approved",
    "request.denied": "Denied",
    "request.cancelled": "Cancelled",
    "request.timed_out": "Timed out",
}


def title(p: dict[str, Any], room: bool = False) -> str:
    """One line: what happened and to which action; ``room``: worded for a shared
    channel rather than for the requester."""
    a = p["request"]["action"]
    head = ROOM_HEADLINES.get(str(p.get("event")), headline(p)) if room else headline(p)
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
    event = p.get("event")
    d: dict[str, Any] = p.get("details") or {}
    r = p["request"]
    a = r["action"]
    comment = f": {d['comment']}" if d.get("comment") else ""
    if event == "request.approved":
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
    if event == "request.denied":
        denier = d.get("by") or p.get("actor")
        if denier == "timeout":
            return [f"Denied: nobody approved in time{comment}."]
        if denier == "policy":
            return [f"Denied by policy {r['policy']}{comment}."]
        return [f"Denied by {denier}{comment}."]
    if event == "request.cancelled":
        return [f"Cancelled by {p.get('actor')}{comment}."]
    if event == "request.revoked":
        return [f"The grant was revoked by {p.get('actor')}{comment}."]
    if event == "request.executed":
        done = f" ({d['summary']})" if d.get("summary") else ""
        return [f"The grant has been used up{done}."]
    if event == "request.failed":
        return [f"Signoff ran the approved action and it failed: {d.get('summary')}."]
    if event == "request.timed_out":
        return [f"Timed out{comment}."]
    if event == "stage.escalated":
        added = ", ".join(d.get("added") or []) or "more approvers"
        return [f"Nobody answered in time; {added} can now approve it too."]
    if event == "grant.expiring":
        return [
            f"Your unused grant expires at {d.get('expires_at')} "
            f"({d.get('uses_left')} use(s) left)."
        ]
    if event == "request.expired":
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
