"""Policy tests: an ask described in full, and what the policy set should decide for it.

A test is judged exactly as the server judges a request: the same ``EvaluationInput``
(action, requester with groups and claims, context with labels and risk, ticket, time),
the same ``PolicySet.evaluate``, and, for a review, the stages as the request would get
them (groups resolved to people through the directory; the requester, who can never
approve their own request, left out). Only the expectations a test states are compared;
each one that differs is one difference, worded as ``expected X, got Y``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from signoff.domain.actions import Action
from signoff.domain.identity import Directory, User
from signoff.domain.policy import Decision, EvaluationInput, Outcome, PolicySet


@dataclass(frozen=True)
class StageExpectation:
    """What one stage should be; ``None`` is not compared."""

    name: str | None = None
    approvers: frozenset[str] | None = None
    quorum: int | None = None


@dataclass(frozen=True)
class Expectation:
    """What the decision should be; ``None`` is not compared. ``quorum`` is one number
    (the decision has one stage) or one per stage."""

    outcome: Outcome | None = None
    policy: str | None = None
    stages: tuple[StageExpectation, ...] | None = None
    approvers: frozenset[str] | None = None
    quorum: int | tuple[int, ...] | None = None


@dataclass(frozen=True)
class PolicyTest:
    name: str
    action: Action
    requester: User
    expect: Expectation
    context: Mapping[str, Any] = field(default_factory=dict)
    ticket: str | None = None
    at: datetime | None = None  # None: the time of the run
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class ResolvedStage:
    """A stage as a request under this decision gets it."""

    name: str
    approvers: frozenset[str]  # who may vote at first (escalation not counted)
    quorum: int


@dataclass(frozen=True)
class Verdict:
    test: PolicyTest
    decision: Decision
    stages: tuple[ResolvedStage, ...]
    differences: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        """The decision in a few words: ``review by 'prod-sql-write'``."""
        said = f"{self.decision.outcome.value} by {self.decision.policy.name!r}"
        return said + (f", error: {self.decision.error}" if self.decision.error else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.test.name,
            "file": self.test.file,
            "line": self.test.line,
            "passed": self.passed,
            "differences": list(self.differences),
            "outcome": self.decision.outcome.value,
            "policy": self.decision.policy.name,
            "error": self.decision.error,
            "stages": [
                {"name": s.name, "approvers": sorted(s.approvers), "quorum": s.quorum}
                for s in self.stages
            ],
        }


def _people(names: Iterable[str]) -> str:
    listed = sorted(names)
    return "[" + ", ".join(listed) + "]"


def _stage_names(stages: tuple[ResolvedStage, ...]) -> str:
    if not stages:
        return "none"
    return ", ".join(s.name for s in stages)


def judge(policies: PolicySet, directory: Directory, test: PolicyTest, now: datetime) -> Verdict:
    """Evaluate one test's ask as the server would, and compare what it expects.
    ``now`` is the time of the run, used when the test gives none."""
    at = test.at or now
    inp = EvaluationInput.of(
        test.action, test.requester, at.astimezone(UTC), test.context, test.ticket
    )
    decision = policies.evaluate(inp)
    stages = (
        tuple(
            ResolvedStage(
                s.name, directory.resolve(s.users, s.groups) - {test.requester.name}, s.quorum
            )
            for s in decision.policy.stages
        )
        if decision.outcome is Outcome.REVIEW
        else ()
    )
    got = f" (policy {decision.policy.name!r})"
    if decision.error:
        got = f" (policy {decision.policy.name!r}: its condition failed: {decision.error})"
    e = test.expect
    diffs: list[str] = []
    if e.outcome is not None and e.outcome is not decision.outcome:
        diffs.append(f"expected outcome {e.outcome.value}, got {decision.outcome.value}{got}")
    if e.policy is not None and e.policy != decision.policy.name:
        diffs.append(f"expected policy {e.policy!r}, got {decision.policy.name!r}")
    if e.stages is not None:
        diffs.extend(_compare_stages(e.stages, stages))
    if e.approvers is not None:
        people = frozenset().union(*(s.approvers for s in stages))
        if e.approvers != people:
            diffs.append(f"expected approvers {_people(e.approvers)}, got {_people(people)}")
    if e.quorum is not None:
        quorums = tuple(s.quorum for s in stages)
        wanted = (e.quorum,) if isinstance(e.quorum, int) else e.quorum
        if wanted != quorums:
            shown = "none (no stages)" if not quorums else ", ".join(map(str, quorums))
            per = " (one per stage)" if len(quorums) > 1 else ""
            diffs.append(f"expected quorum {', '.join(map(str, wanted))}, got {shown}{per}")
    return Verdict(test, decision, stages, tuple(diffs))


def _compare_stages(
    expected: tuple[StageExpectation, ...], got: tuple[ResolvedStage, ...]
) -> list[str]:
    if len(expected) != len(got):
        return [
            f"expected {len(expected)} stage{'s' if len(expected) != 1 else ''}, "
            f"got {_stage_names(got)}"
        ]
    diffs = []
    for i, (e, g) in enumerate(zip(expected, got, strict=True), 1):
        if e.name is not None and e.name != g.name:
            diffs.append(f"expected stage {i} named {e.name!r}, got {g.name!r}")
        if e.approvers is not None and e.approvers != g.approvers:
            diffs.append(
                f"expected stage {i} ({g.name}) approvers {_people(e.approvers)}, "
                f"got {_people(g.approvers)}"
            )
        if e.quorum is not None and e.quorum != g.quorum:
            diffs.append(f"expected stage {i} ({g.name}) quorum {e.quorum}, got {g.quorum}")
    return diffs


def judge_all(
    policies: PolicySet, directory: Directory, tests: Iterable[PolicyTest], now: datetime
) -> list[Verdict]:
    return [judge(policies, directory, t, now) for t in tests]
