"""What every channel says about an event, as plain text; each channel adds its markup.

Built from the typed ``Message`` of an outbox row only (see ``services.messages``), so a
message reads the same whenever it is delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from signoff.adapters.signing import VoteLinkSigner
from signoff.domain.events import EventType
from signoff.services.messages import Message, RequestSummary, StageSummary

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
    stage = m.request.stage
    if event is EventType.STAGE_ADVANCED and stage is not None:
        return f"Approval needed (stage {stage.number} of {stage.of}: {stage.name})"
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


def when(iso: str) -> str:
    """A moment as people read it in a message: "2026-11-23 14:05 UTC"."""
    try:
        at = datetime.fromisoformat(iso).astimezone(UTC)
    except ValueError:
        return iso
    return at.strftime("%Y-%m-%d %H:%M UTC")


def said(status: str) -> str:
    """A state in prose: "timed out", not "timed_out"."""
    return status.replace("_", " ")


def stage_line(s: StageSummary) -> str:
    """ "1 of 2: dba, until 2026-11-23 14:05 UTC, then escalates to erin"."""
    text = f"{s.number} of {s.of}: {s.name}"
    if s.escalated:
        text += " (escalated)"
    if s.deadline_at is not None and s.then is not None:
        then = s.then
        if then == "escalates" and s.escalate_to:
            then = f"escalates to {', '.join(s.escalate_to)}"
        text += f", until {when(s.deadline_at)}, then {then}"
    return text


# What every message says of a stage with ``approve_with: passkey``.
PASSKEY_NEEDED = (
    "this stage needs a passkey: approve or deny on the request's web page "
    "(a vote from Slack, Teams, mail or the CLI is not counted)"
)


def needed_line(r: RequestSummary) -> str:
    """ "1 more approval from carol or dave"."""
    n = r.still_needed
    more = f"{n} more approval{'s' if n != 1 else ''}"
    if not r.awaiting:
        return f"{more}; nobody left who may approve"
    return f"{more} from {' or '.join(r.awaiting)}"


def votes_line(r: RequestSummary) -> str:
    return "; ".join(
        f"{v.voter} {v.decision}"
        + (f" (stage {v.stage})" if r.stage and r.stage.of > 1 else "")
        + (f": {v.comment}" if v.comment else "")
        for v in r.votes
    )


def context_rows(r: RequestSummary, status: str) -> list[tuple[str, str]]:
    """A request's context, as (label, text) rows in the order people read them: the
    one rendering every channel and page uses (params follow, each as a block)."""
    rows = [("Action", f"{r.type} on {r.target}")]
    if r.analysis:
        rows.append(("Analysis", r.analysis))
    rows += [
        ("Requester", r.requester),
        ("Reason", r.reason or "-"),
        ("Ticket", r.ticket or "-"),
    ]
    if r.risk:
        rows.append(("Risk", r.risk.upper()))
    rows += [("Link", link) for link in r.links]
    if r.labels:
        rows.append(("Labels", ", ".join(f"{k}={v}" for k, v in r.labels.items())))
    pending = status == "pending"
    if pending and r.stage is not None:
        rows.append(("Stage", stage_line(r.stage)))
    if r.votes:
        rows.append(("Votes", votes_line(r)))
    if pending and r.stage is not None:
        rows.append(("Still needed", needed_line(r)))
    if pending and r.stage is not None and r.stage.approve_with == "passkey":
        rows.append(("Passkey", PASSKEY_NEEDED))
    rows += [("Policy", r.policy), ("Status", said(status))]
    if r.outcome and not pending:
        rows.append(("Outcome", r.outcome))
    return rows


def view_url(public_url: str, m: Message) -> str:
    return f"{public_url.rstrip('/')}/requests/{m.request.id}"


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def news(m: Message) -> list[str]:
    """What happened, for the requester: who decided and why, and what to do next."""
    event = m.kind
    d = m.details
    r = m.request
    comment = f": {d.comment}" if d.comment else ""
    cmds = r.commands
    if m.asks_to_vote:
        return []
    if event is EventType.REQUEST_APPROVED:
        by = "by policy" if m.actor == "policy" else f"by {m.actor}"
        lines = [f"Approved {by}."]
        if r.grant is not None:
            lines.append(
                f"Your grant: {r.grant.uses_left} use(s) until {when(r.grant.expires_at)}."
            )
        if "execute" in cmds:
            lines += ["Signoff runs it for you on its target:", f"  {cmds['execute']}"]
        elif "redeem" in cmds:
            lines += [
                "Redeem the grant for exactly this action (the token prints with "
                f"{cmds['token']}):",
                f"  {cmds['redeem']}",
            ]
        elif "token" in cmds:
            lines += [
                "Get the grant's token (it redeems only this exact action):",
                f"  {cmds['token']}",
                f"The action: {cmds['show']}",
            ]
        return lines
    if event in _ENDINGS and r.outcome:
        return [_sentence(r.outcome)]
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
        at = when(d.expires_at) if d.expires_at else "soon"
        return [f"Your unused grant expires at {at} ({d.uses_left} use(s) left)."]
    if event is EventType.REQUEST_EXPIRED:
        return ["The grant expired before it was used; ask again if you still need it."]
    return []


def vote_commands(m: Message) -> list[str]:
    """For an approver: how to answer from a terminal instead of a link."""
    cmds = m.request.commands
    if not m.asks_to_vote or "approve" not in cmds:
        return []
    return ["Or from a terminal:", f"  {cmds['approve']}", f"  {cmds['deny']}"]


# Events whose message says why the request ended, from its outcome line.
_ENDINGS = frozenset(
    {
        EventType.REQUEST_DENIED,
        EventType.REQUEST_CANCELLED,
        EventType.REQUEST_REVOKED,
        EventType.REQUEST_TIMED_OUT,
    }
)


@dataclass(frozen=True)
class VoteLinks:
    """Each approver's own signed Approve and Deny links (bound to them, the request and
    the decision; expiring; single-use), for channels that reach one person."""

    signer: VoteLinkSigner
    clock_now: Callable[[], datetime]
    public_url: str
    ttl: timedelta

    def __call__(self, person: str, m: Message, channel: str = "") -> dict[str, str] | None:
        """This person's links, when the message asks them to vote (``channel``: the kind
        of channel they are sent by, recorded with the vote)."""
        if not m.asks_to_vote:
            return None
        expires = self.clock_now() + self.ttl
        rid = m.request.id
        base = self.public_url.rstrip("/")
        return {
            d: f"{base}/links/{self.signer.issue(person, rid, d, expires, channel)}"
            for d in ("approve", "deny")
        }

    def view(self, person: str, m: Message) -> str:
        """This person's "Details" link: the request's page, signed for them."""
        expires = self.clock_now() + self.ttl
        token = self.signer.issue_view(person, m.request.id, expires)
        return f"{view_url(self.public_url, m)}?t={token}"
