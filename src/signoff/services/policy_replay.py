"""Policy replay: judge a candidate policy set against the asks Signoff has stored, each
as it was judged (its action, context, ticket, time, and the requester's groups and
claims then), next to the current set judging the same input, and say what would
change: outcomes, approvers, quorums, how many asks approvers would be spared or given,
with examples. ``widening`` counts what the candidate allows or softens that the current
set did not, so a policy repository's CI can refuse it (``--fail-on widening``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from signoff.domain.errors import NotFound
from signoff.domain.identity import User
from signoff.domain.policy import Decision, EvaluationInput, Outcome, PolicySet
from signoff.services.dependencies import Services
from signoff.services.history import StoredHistory
from signoff.services.ports import StoredAsk
from signoff.services.requests import people_resolver

EXAMPLES = 5  # request ids kept per kind of change
# How strict an outcome is: a move down this scale widens.
STRICTNESS = {Outcome.DENY: 2, Outcome.REVIEW: 1, Outcome.ALLOW: 0}


@dataclass(frozen=True)
class Judged:
    outcome: Outcome
    policy: str
    stages: tuple[tuple[frozenset[str], int], ...]  # (who may approve, quorum) per stage

    @property
    def asks(self) -> int:
        """People asked to vote (every stage's, once each)."""
        return len(frozenset().union(*(people for people, _ in self.stages)))

    @property
    def approvals(self) -> int:
        return sum(q for _, q in self.stages)


@dataclass
class Change:
    id: str
    current: str
    candidate: str
    what: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "current": self.current,
            "candidate": self.candidate,
            "what": self.what,
        }


@dataclass
class ReplayResult:
    since: datetime
    until: datetime
    requests: int = 0
    changed: int = 0
    approximate: int = 0  # stored before requesters were recorded: judged as they are now
    outcomes: Counter[str] = field(default_factory=Counter)  # "review -> allow": n
    policies: Counter[str] = field(default_factory=Counter)  # "a -> b": n (same outcome)
    approver_changes: int = 0
    quorum_changes: int = 0
    asks_spared: int = 0
    asks_given: int = 0
    widening: int = 0
    narrowing: int = 0
    examples: dict[str, list[Change]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "requests": self.requests,
            "changed": self.changed,
            "approximate": self.approximate,
            "outcomes": dict(sorted(self.outcomes.items())),
            "policies": dict(sorted(self.policies.items())),
            "approver_changes": self.approver_changes,
            "quorum_changes": self.quorum_changes,
            "asks_spared": self.asks_spared,
            "asks_given": self.asks_given,
            "widening": self.widening,
            "narrowing": self.narrowing,
            "examples": {k: [c.as_dict() for c in v] for k, v in sorted(self.examples.items())},
        }


def replay(
    svc: Services, user: User, candidate: PolicySet, since: datetime, until: datetime
) -> ReplayResult:
    """Admins only: the stored asks of [since, until) judged by both sets."""
    user.require_admin("replay a policy set against history")
    with svc.uow(write=False) as uow:
        asks = list(uow.flow_rows.asks(since, until))
    return compare(svc, asks, svc.policies, candidate, since, until)


def compare(
    svc: Services,
    asks: Iterable[StoredAsk],
    current: PolicySet,
    candidate: PolicySet,
    since: datetime,
    until: datetime,
) -> ReplayResult:
    resolve = people_resolver(svc)
    result = ReplayResult(since, until)
    for ask in asks:
        result.requests += 1
        requester, exact = _requester(svc, ask)
        result.approximate += not exact
        record = (
            StoredHistory(svc, ask.requester, ask.created_at, before_the_day=True)
            if current.uses_history or candidate.uses_history
            else None
        )
        inp = EvaluationInput.of(
            ask.action, requester, ask.created_at, ask.context, ask.ticket, record
        )
        before = _judged(current.evaluate(inp), resolve, requester.name)
        after = _judged(candidate.evaluate(inp), resolve, requester.name)
        what = _differences(before, after, result)
        if what:
            result.changed += 1
            kind = what[0]
            kept = result.examples.setdefault(kind, [])
            if len(kept) < EXAMPLES:
                kept.append(Change(ask.id, _said(before), _said(after), what))
    return result


def _requester(svc: Services, ask: StoredAsk) -> tuple[User, bool]:
    """The requester as they were judged; for asks stored before that was kept, as the
    directory has them now (counted as approximate)."""
    s = ask.snapshot
    if s is not None:
        return (
            User(
                name=ask.requester,
                email=s.get("email"),
                admin=bool(s.get("admin")),
                groups=frozenset(s.get("groups") or ()),
                claims=s.get("claims") or {},
            ),
            True,
        )
    try:
        return svc.directory.user(ask.requester), False
    except NotFound:
        return User(ask.requester), False


def _judged(decision: Decision, resolve: Any, requester: str) -> Judged:
    stages: tuple[tuple[frozenset[str], int], ...] = ()
    if decision.outcome is Outcome.REVIEW:
        stages = tuple(
            (resolve(s.users, s.groups) - {requester}, s.quorum) for s in decision.policy.stages
        )
    return Judged(decision.outcome, decision.policy.name, stages)


def _said(j: Judged) -> str:
    if j.outcome is not Outcome.REVIEW:
        return f"{j.outcome.value} ({j.policy})"
    stages = "; ".join(f"{q} of {', '.join(sorted(people)) or 'nobody'}" for people, q in j.stages)
    return f"review ({j.policy}): {stages}"


def _differences(before: Judged, after: Judged, result: ReplayResult) -> list[str]:
    """What changed for one ask, most telling first; counts it into ``result``."""
    what: list[str] = []
    if before.outcome is not after.outcome:
        move = f"{before.outcome.value} -> {after.outcome.value}"
        result.outcomes[move] += 1
        what.append(move)
        if STRICTNESS[after.outcome] < STRICTNESS[before.outcome]:
            result.widening += 1
        else:
            result.narrowing += 1
    elif before.outcome is Outcome.REVIEW:
        widened = narrowed = False
        if before.approvals != after.approvals or len(before.stages) != len(after.stages):
            result.quorum_changes += 1
            what.append(
                f"approvals needed {before.approvals} -> {after.approvals}"
                f" ({len(before.stages)} -> {len(after.stages)} stages)"
            )
            widened |= after.approvals < before.approvals
            narrowed |= after.approvals > before.approvals
        people_before = _people(before)
        people_after = _people(after)
        if people_before != people_after:
            result.approver_changes += 1
            added, removed = people_after - people_before, people_before - people_after
            parts = []
            if added:
                parts.append("+" + ", +".join(sorted(added)))
            if removed:
                parts.append("-" + ", -".join(sorted(removed)))
            what.append("approvers " + " ".join(parts))
            widened |= bool(added)
            narrowed |= bool(removed) and not added
        result.widening += widened
        result.narrowing += narrowed and not widened
    if before.policy != after.policy and before.outcome is after.outcome:
        result.policies[f"{before.policy} -> {after.policy}"] += 1
        if not what:
            what.append(f"policy {before.policy} -> {after.policy}")
    if before.asks != after.asks:
        if after.asks < before.asks:
            result.asks_spared += before.asks - after.asks
        else:
            result.asks_given += after.asks - before.asks
    return what


def _people(j: Judged) -> frozenset[str]:
    return frozenset().union(*(people for people, _ in j.stages))
