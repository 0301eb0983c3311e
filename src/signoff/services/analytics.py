"""How the approval flow really behaves, from what Signoff already keeps: per policy,
per approver and per channel figures over a window, the queue now, and findings (each
with its evidence and a suggested change) that say which rules only make noise, who may
be approving on autopilot, and who is asked too often.

Percentiles are nearest-rank (p50 of 1, 2, 3, 4 is 2): each is a time that happened.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from signoff.domain.durations import parse_duration
from signoff.domain.errors import InvalidInput
from signoff.domain.identity import User
from signoff.services.dependencies import Services, Thresholds
from signoff.services.ports import FlowRows
from signoff.wording import plural

GRANTED = frozenset({"approved", "executed", "failed", "expired", "revoked"})
QUEUE_LIMIT = 100


@dataclass
class PolicyFigures:
    name: str
    requests: int = 0
    allowed: int = 0  # allowed outright by the policy
    denied_by_policy: int = 0
    reviewed: int = 0
    approved: int = 0
    denied: int = 0
    timed_out: int = 0
    cancelled: int = 0
    pending: int = 0
    escalated: int = 0
    approval_rate: float | None = None  # approved / (approved + denied)
    decision_p50_s: float | None = None  # reviewed: asked -> decided
    decision_p90_s: float | None = None
    first_look_p50_s: float | None = None  # reviewed: asked -> an approver's first look
    first_look_p90_s: float | None = None


@dataclass
class ApproverFigures:
    name: str
    asks: int = 0
    votes: int = 0
    approvals: int = 0
    denials: int = 0
    approval_rate: float | None = None
    look_to_decision_p50_s: float | None = None  # their first look -> their vote
    quick_approvals: int = 0  # within the quick threshold of their first look
    timed_approvals: int = 0  # approvals with a recorded first look
    notifications: int = 0  # asks delivered to them in the window
    notifications_per_day: float = 0.0
    busiest_day: int = 0
    days_over_budget: int = 0


@dataclass
class ChannelFigures:
    name: str
    votes: int = 0
    approvals: int = 0
    denials: int = 0
    decision_p50_s: float | None = None  # request asked -> vote on this channel


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str  # a policy, an approver or a requester
    evidence: str
    suggestion: str


@dataclass
class Report:
    since: datetime
    until: datetime
    policy: str | None
    requests: int
    policies: list[PolicyFigures]
    approvers: list[ApproverFigures]
    channels: list[ChannelFigures]
    queue: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Every field, nested dataclasses as dicts (times stay datetimes: the API's
        encoder writes them in ISO 8601)."""
        return asdict(self)


# Each kind of finding, and what it is called where people read it.
FINDING_KINDS = {
    "always_approved": "Always approved",
    "times_out": "Times out or escalates",
    "quick_approvals": "Quick approvals",
    "never_denies": "Never denies",
    "over_notified": "Over-notified",
    "never_matches": "Never matches",
    "noisy_requester": "Noisy requester",
}


MAX_WINDOW = timedelta(days=400)


def window(now: datetime, since: str, until: str | None = None) -> tuple[datetime, datetime]:
    """The report's window from what a person typed: ``since`` a duration back from now
    (``30d``, ``12h``) or a date/time (``2026-11-01``, UTC unless it says), ``until`` a
    date/time (default now)."""
    end = _instant(until, "until") if until else now
    text = since.strip()
    if text[:1].isdigit() and not _looks_like_date(text):
        try:
            start = end - parse_duration(text)
        except (ValueError, OverflowError) as exc:
            raise InvalidInput(str(exc), field="since") from None
    else:
        start = _instant(text, "since")
    if start >= end:
        raise InvalidInput("since must be before until", field="since")
    if end - start > MAX_WINDOW:
        raise InvalidInput(
            f"the window is longer than {MAX_WINDOW.days} days: report on a shorter one",
            field="since",
        )
    return start, end


def _looks_like_date(text: str) -> bool:
    return len(text) >= 10 and text[4] == "-" and text[7] == "-"


def _instant(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{name} must be a duration (30d, 12h) or a date (2026-11-01, "
            f"2026-11-01T09:00Z); got {text[:40]!r}",
            field=name,
        ) from None
    # in UTC, as every time the report gives (its window is shown as '... UTC')
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def report(
    svc: Services,
    user: User,
    since: datetime,
    until: datetime | None = None,
    policy: str | None = None,
    thresholds: Thresholds | None = None,
) -> Report:
    """The flow over [since, until): admins see everything; anyone else their own figures
    as an approver, and the findings about them."""
    found = whole_report(svc, since, until, policy, thresholds)
    if user.admin:
        return found
    return Report(
        since=found.since,
        until=found.until,
        policy=policy,
        requests=0,
        policies=[],
        approvers=[a for a in found.approvers if a.name == user.name],
        channels=[],
        queue={},
        findings=[f for f in found.findings if f.subject == user.name],
    )


def whole_report(
    svc: Services,
    since: datetime,
    until: datetime | None = None,
    policy: str | None = None,
    thresholds: Thresholds | None = None,
) -> Report:
    """Every figure over [since, until), for admins and the metrics endpoint."""
    until = until or svc.clock.now()
    thresholds = thresholds or svc.thresholds
    with svc.uow(write=False) as uow:
        rows = uow.flow_rows.rows(since, until, policy)
        now = svc.clock.now()
        queue: dict[str, Any] = {
            "pending": uow.flow_rows.pending_count(),
            "oldest": uow.flow_rows.pending(QUEUE_LIMIT),
            "due_within_hour": uow.flow_rows.pending_due(now + timedelta(hours=1), QUEUE_LIMIT),
        }
    for item in (*queue["oldest"], *queue["due_within_hour"]):
        item["waiting_s"] = round((now - item["created_at"]).total_seconds(), 3)
    known = [p.name for p in svc.policies.policies] if policy is None else []
    return compute(rows, since, until, policy, queue, known, thresholds)


def compute(
    rows: FlowRows,
    since: datetime,
    until: datetime,
    policy: str | None,
    queue: dict[str, Any],
    known_policies: Iterable[str],
    th: Thresholds,
) -> Report:
    """Every figure and finding, from the rows of one window (pure: tests feed it)."""
    created = {r.id: r.created_at for r in rows.requests}
    requester = {r.id: r.requester for r in rows.requests}
    asked: dict[str, set[str]] = defaultdict(set)
    for rid, person in rows.asks:
        if person != requester.get(rid):  # nobody is asked about their own request
            asked[rid].add(person)
    first_look: dict[tuple[str, str], datetime] = {}
    request_look: dict[str, datetime] = {}  # the first look of anyone asked
    vote_channel: dict[tuple[str, str], str] = {}
    escalated_events: set[str] = set()
    for rid, person, kind, channel, at in rows.events:
        if kind == "seen":
            key = (rid, person)
            if key not in first_look or at < first_look[key]:
                first_look[key] = at
            if person in asked.get(rid, ()) and (rid not in request_look or at < request_look[rid]):
                request_look[rid] = at
        elif kind == "voted":
            vote_channel[(rid, person)] = channel
        elif kind == "escalated":
            escalated_events.add(rid)

    policies: dict[str, PolicyFigures] = {}
    decision_times: dict[str, list[float]] = defaultdict(list)
    look_times: dict[str, list[float]] = defaultdict(list)
    folds: Counter[str] = Counter()
    folded_into: Counter[str] = Counter()
    for r in rows.requests:
        p = policies.setdefault(r.policy, PolicyFigures(r.policy))
        p.requests += 1
        if r.folds:
            folds[r.requester] += r.folds
            folded_into[r.requester] += 1
        reviewed = bool(asked.get(r.id))
        if not reviewed:
            if r.status in GRANTED:
                p.allowed += 1
            elif r.status == "denied":
                p.denied_by_policy += 1
            continue
        p.reviewed += 1
        if r.escalated or r.id in escalated_events:
            p.escalated += 1
        if r.status in GRANTED:
            p.approved += 1
        elif r.status == "denied":
            p.denied += 1
        elif r.status == "timed_out":
            p.timed_out += 1
        elif r.status == "cancelled":
            p.cancelled += 1
        elif r.status == "pending":
            p.pending += 1
        if r.decided_at is not None and r.status in GRANTED | {"denied", "timed_out"}:
            decision_times[r.policy].append(_seconds(r.decided_at - r.created_at))
        if r.id in request_look:
            look_times[r.policy].append(_seconds(request_look[r.id] - r.created_at))
    for p in policies.values():
        decided = p.approved + p.denied
        p.approval_rate = _ratio(p.approved, decided)
        p.decision_p50_s = percentile(decision_times[p.name], 50)
        p.decision_p90_s = percentile(decision_times[p.name], 90)
        p.first_look_p50_s = percentile(look_times[p.name], 50)
        p.first_look_p90_s = percentile(look_times[p.name], 90)

    approvers: dict[str, ApproverFigures] = {}
    for people in asked.values():
        for person in people:
            approvers.setdefault(person, ApproverFigures(person)).asks += 1
    look_to_vote: dict[str, list[float]] = defaultdict(list)
    channels: dict[str, ChannelFigures] = {}
    channel_times: dict[str, list[float]] = defaultdict(list)
    for rid, voter, decision, at in rows.votes:
        if voter == "policy":
            continue
        a = approvers.setdefault(voter, ApproverFigures(voter))
        a.votes += 1
        approve = decision == "approve"
        a.approvals += approve
        a.denials += not approve
        seen = first_look.get((rid, voter))
        # A vote is recorded as a look at the latest: a look at the vote's own moment is
        # that record (a vote from the CLI, the API, a Slack button), not a measured look,
        # and it says nothing about how long they read (it would be a 0 s "quick approval").
        if seen is not None and seen < at:
            took = _seconds(at - seen)
            look_to_vote[voter].append(took)
            if approve:
                a.timed_approvals += 1
                a.quick_approvals += took <= th.quick_seconds
        name = vote_channel.get((rid, voter), "unknown")
        c = channels.setdefault(name, ChannelFigures(name))
        c.votes += 1
        c.approvals += approve
        c.denials += not approve
        if rid in created:
            channel_times[name].append(_seconds(at - created[rid]))
    days = max((until - since).total_seconds() / 86400, 1 / 24)
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    for person, day, n in rows.notified:
        per_day[person][day] += n
    for person, counted in per_day.items():
        a = approvers.setdefault(person, ApproverFigures(person))
        a.notifications = sum(counted.values())
        a.notifications_per_day = round(a.notifications / days, 2)
        a.busiest_day = max(counted.values())
        a.days_over_budget = sum(1 for n in counted.values() if n > th.notify_budget)
    for a in approvers.values():
        a.approval_rate = _ratio(a.approvals, a.votes)
        a.look_to_decision_p50_s = percentile(look_to_vote[a.name], 50)
    for c in channels.values():
        c.decision_p50_s = percentile(channel_times[c.name], 50)

    found = Report(
        since=since,
        until=until,
        policy=policy,
        requests=len(rows.requests),
        policies=sorted(policies.values(), key=lambda p: (-p.requests, p.name)),
        approvers=sorted(approvers.values(), key=lambda a: (-a.asks, a.name)),
        channels=sorted(channels.values(), key=lambda c: (-c.votes, c.name)),
        queue=queue,
    )
    found.findings = findings(found, known_policies, folds, folded_into, th)
    return found


def findings(
    r: Report,
    known_policies: Iterable[str],
    folds: Counter[str],
    folded_into: Counter[str],
    th: Thresholds,
) -> list[Finding]:
    out: list[Finding] = []
    for p in r.policies:
        if p.reviewed >= th.min_reviews and p.approved == p.reviewed:
            out.append(
                Finding(
                    "always_approved",
                    p.name,
                    f"all {p.reviewed} reviews were approved (none denied, none timed out)",
                    "approvers are asked about something always approved: make the common "
                    "case `outcome: allow` with a `match` condition that covers it, and "
                    "keep review for the rest",
                )
            )
        stuck = p.timed_out + p.escalated
        if p.reviewed >= th.min_votes and stuck / p.reviewed >= th.timeout_share:
            out.append(
                Finding(
                    "times_out",
                    p.name,
                    f"{p.timed_out} of {p.reviewed} reviews timed out and {p.escalated} escalated",
                    "too few approvers, or the wrong ones: add approvers, an "
                    "`escalate_to`, or check that the approvers are reachable",
                )
            )
    for a in r.approvers:
        if a.timed_approvals >= th.min_votes and a.quick_approvals / a.timed_approvals >= (
            th.quick_share
        ):
            out.append(
                Finding(
                    "quick_approvals",
                    a.name,
                    f"{a.quick_approvals} of {a.timed_approvals} approvals came within "
                    f"{th.quick_seconds:g} s of their first look (median look to decision "
                    f"{a.look_to_decision_p50_s:g} s)",
                    "possible rubber-stamping: check what they approve, require a comment "
                    "or a passkey stage, or allow by policy what needs no reading",
                )
            )
        if a.votes >= th.never_denies_votes and a.denials == 0:
            out.append(
                Finding(
                    "never_denies",
                    a.name,
                    f"{a.votes} votes, all approvals",
                    "either what they review needs no review (allow it by policy), or "
                    "they approve without reading: look at their approvals",
                )
            )
        if a.days_over_budget:
            out.append(
                Finding(
                    "over_notified",
                    a.name,
                    f"up to {a.busiest_day} asks a day ({plural(a.days_over_budget, 'day')} over "
                    f"the budget of {th.notify_budget}; {a.notifications_per_day:g} a day on "
                    "average)",
                    "use `notify_mode: digest` for their policies, share the load with "
                    "more approvers, or allow low-risk asks by policy",
                )
            )
    seen = {p.name for p in r.policies}
    if r.requests >= th.min_reviews:
        for name in known_policies:
            if name not in seen:
                out.append(
                    Finding(
                        "never_matches",
                        name,
                        f"matched none of the {r.requests} requests of the window",
                        "remove it, or check its `match` (type, target) against what is "
                        "really asked",
                    )
                )
    for requester, n in sorted(folds.items()):
        if n >= th.fold_count:
            out.append(
                Finding(
                    "noisy_requester",
                    requester,
                    f"{n} identical asks folded into "
                    f"{plural(folded_into[requester], 'pending request')}",
                    "the caller asks again instead of waiting: use `signoff request "
                    "--wait` (or the event stream) rather than retrying",
                )
            )
    return out


def percentile(values: list[float], pct: int) -> float | None:
    """Nearest-rank percentile (a value that occurred), or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
