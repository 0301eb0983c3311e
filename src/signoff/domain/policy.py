"""Policies: which actions they match, what they decide, and why.

Evaluation is first match wins, in file order, then the policy set's explicit
default. Policies are indexed by exact action type, so a request only meets the
policies that can match its type (plus those whose type is a glob or absent),
and a CEL condition is run only after the type and target have matched.

A condition that fails to evaluate (a missing key, a type error) fails closed:
the request is denied by that policy and the error is shown in the explanation.
"""

from __future__ import annotations

import fnmatch
import re
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from signoff.domain.actions import Action
from signoff.domain.durations import parse_duration
from signoff.domain.identity import User
from signoff.domain.sql import analyse


def _import_cel() -> types.ModuleType:
    """The ``cel`` package (with ``cel.stdlib``), without its command line.

    ``cel/__init__.py`` also imports ``cel.cli`` (typer, prompt_toolkit, pygments: about
    110 ms of CPU at every server start), which Signoff never uses. A placeholder stands
    in for it while the package loads and is taken out after, so ``import cel.cli`` still
    finds the real one."""
    if "cel" in sys.modules:
        return sys.modules["cel"]
    placeholder = types.ModuleType("cel.cli")
    sys.modules.setdefault("cel.cli", placeholder)
    try:
        import cel
        import cel.stdlib
    finally:
        if sys.modules.get("cel.cli") is placeholder:
            del sys.modules["cel.cli"]
    return cel


cel = _import_cel()

CEL_VARIABLES = frozenset({"action", "requester", "context", "labels", "risk", "now", "ticket"})
CEL_FUNCTIONS = frozenset(
    {
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "timestamp",
        "duration",
        "has",
        "all",
        "exists",
        "exists_one",
        "map",
        "filter",
        "type",
        "dyn",
        "getFullYear",
        "getMonth",
        "getDayOfYear",
        "getDayOfMonth",
        "getDate",
        "getDayOfWeek",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
    }
) | frozenset(
    name
    for full in cel.stdlib.STDLIB_FUNCTIONS
    for name in (full, full.rsplit(".", 1)[-1])  # `math.abs(x)` is reported as `abs`
)
# The requester's record (progressive trust): how many of their asks of a type, on
# targets matching a glob, were approved (less incidents: failed or revoked), executed,
# or denied, over a window back from the ask: ``history.approved("deploy", "staging/*",
# "90d") >= 3``. Read from per-day tallies (``history_tallies``), not from a scan.
HISTORY_FUNCTIONS = frozenset({"history.approved", "history.executed", "history.denied"})
CEL_FUNCTIONS = CEL_FUNCTIONS | HISTORY_FUNCTIONS | {"approved", "executed", "denied"}
# `math.abs(x)` also reports `math` as a variable: the extension namespaces are not ones.
CEL_NAMESPACES = frozenset(
    n.split(".", 1)[0] for n in (*cel.stdlib.STDLIB_FUNCTIONS, *HISTORY_FUNCTIONS) if "." in n
)


class RequesterHistory(Protocol):
    """A requester's record as policies read it (their earlier asks, by outcome)."""

    def count(self, kind: str, action_type: str, target_glob: str, since: datetime) -> int:
        """Their asks of ``kind`` (approved, executed, denied) since a time."""
        ...

    def first_seen(self) -> datetime | None:
        """When they first asked for anything; None: never."""
        ...


class Outcome(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REVIEW = "review"


@dataclass(frozen=True)
class Stage:
    name: str
    users: tuple[str, ...]
    groups: tuple[str, ...]
    quorum: int
    timeout: timedelta | None = None
    reminders: tuple[timedelta, ...] = ()
    escalate_users: tuple[str, ...] = ()
    escalate_groups: tuple[str, ...] = ()
    escalation_timeout: timedelta | None = None
    # how a vote on this stage must be made besides the session: "passkey" (a fresh
    # WebAuthn assertion bound to the vote), or None
    approve_with: str | None = None


@dataclass(frozen=True)
class GrantRule:
    ttl: timedelta = timedelta(minutes=15)
    uses: int = 1
    read_only: bool = False  # executions through Signoff run in a READ ONLY transaction
    # who besides the requester (and admins) may have Signoff execute it, e.g. a CI user
    executor_users: tuple[str, ...] = ()
    executor_groups: tuple[str, ...] = ()
    # the target's enforcement points, who may redeem the grant besides the requester
    # and the executors
    redeemer_users: tuple[str, ...] = ()
    redeemer_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestRules:
    reason_required: bool = False
    ticket_pattern: str | None = None

    def ticket_regex(self) -> re.Pattern[str] | None:
        return re.compile(self.ticket_pattern) if self.ticket_pattern else None


@dataclass(frozen=True)
class Condition:
    source: str
    program: Any  # cel.Program

    def evaluate(self, ctx: Any) -> bool:
        return bool(self.program.execute(ctx))


@dataclass(frozen=True)
class Policy:
    name: str
    outcome: Outcome
    types: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    condition: Condition | None = None
    stages: tuple[Stage, ...] = ()
    on_timeout: str = "timed_out"
    notify: tuple[str, ...] = ()  # channels; empty: the server's default channels
    digest_every: timedelta | None = None  # approvers are told in one batch per period
    grant: GrantRule = field(default_factory=GrantRule)
    rules: RequestRules = field(default_factory=RequestRules)
    # who may see its requests besides those involved (visible_to)
    viewer_users: tuple[str, ...] = ()
    viewer_groups: tuple[str, ...] = ()
    description: str = ""
    file: str = ""
    line: int = 0
    _target_res: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)
    _type_res: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_target_res", tuple(re.compile(fnmatch.translate(t)) for t in self.targets)
        )
        object.__setattr__(
            self, "_type_res", tuple(re.compile(fnmatch.translate(t)) for t in self.types)
        )

    @property
    def exact_types(self) -> tuple[str, ...] | None:
        """The exact types this policy matches, or None if any glob or no type is involved."""
        if not self.types or any(_is_glob(t) for t in self.types):
            return None
        return self.types

    def type_matches(self, action_type: str) -> bool:
        return not self.types or any(r.match(action_type) for r in self._type_res)

    def target_matches(self, target: str) -> bool:
        return not self.targets or any(r.match(target) for r in self._target_res)


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


@dataclass(frozen=True)
class EvaluationInput:
    action: Action
    requester: User
    now: datetime
    context: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    risk: str | None = None
    ticket: str | None = None
    # the requester's record, read when a condition asks (history.*, requester.first_seen)
    history: RequesterHistory | None = field(default=None, compare=False)

    @classmethod
    def of(
        cls,
        action: Action,
        requester: User,
        now: datetime,
        context: Mapping[str, Any],
        ticket: str | None,
        history: RequesterHistory | None = None,
    ) -> EvaluationInput:
        """What policies judge for one ask: its labels and risk are read from its
        context (free-form, so only the expected types count)."""
        labels = context.get("labels") or {}
        risk = context.get("risk")
        return cls(
            action=action,
            requester=requester,
            now=now,
            context=context,
            labels=labels if isinstance(labels, dict) else {},
            risk=risk if isinstance(risk, str) else None,
            ticket=ticket,
            history=history,
        )

    def cel_context(self, functions: Mapping[str, Any] | None = None, history: bool = True) -> Any:
        """The CEL activation; ``functions`` are the extension functions to register
        (by default all of them; a PolicySet passes only those its conditions call), and
        ``history`` whether they read the requester's record."""
        requester = {
            "name": self.requester.name,
            "email": self.requester.email or "",
            "groups": sorted(self.requester.groups),
            "admin": self.requester.admin,
            "claims": dict(self.requester.claims),
        }
        if history:
            first = self.history.first_seen() if self.history is not None else None
            requester["first_seen"] = first or self.now  # a newcomer: first seen now
        ctx = cel.Context(
            {
                "action": {**self.action.as_dict(), **analyse(self.action.params)},
                "requester": requester,
                "context": dict(self.context),
                "labels": dict(self.labels),
                "risk": self.risk or "",
                "ticket": self.ticket or "",
                "now": self.now,
            }
        )
        if functions is None:
            cel.stdlib.add_stdlib_to_context(ctx)
        else:
            for name, fn in functions.items():
                ctx.add_function(name, fn)
        if history:
            for name in HISTORY_FUNCTIONS:
                ctx.add_function(name, self._counter(name.split(".", 1)[1]))
        return ctx

    def _counter(self, kind: str) -> Any:
        def count(*args: Any) -> int:
            if len(args) != 3 or not all(isinstance(a, str) for a in args):
                raise TypeError(
                    f"history.{kind}(TYPE, TARGET_GLOB, WINDOW) takes 3 strings, e.g. "
                    f'history.{kind}("deploy", "staging/*", "90d")'
                )
            action_type, target_glob, window = args
            since = self.now - parse_duration(window)
            if self.history is None:
                return 0
            return self.history.count(kind, action_type, target_glob, since)

        return count


@dataclass(frozen=True)
class Miss:
    """Why one policy did not decide a request."""

    policy: str
    clause: str  # "type" | "target" | "condition"
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"policy": self.policy, "clause": self.clause, "detail": self.detail}


@dataclass(frozen=True)
class Decision:
    policy: Policy
    outcome: Outcome
    reason: str
    misses: tuple[Miss, ...] = ()
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.name,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "error": self.error,
            "skipped": [m.as_dict() for m in self.misses],
            "stages": [
                {
                    "name": s.name,
                    "users": list(s.users),
                    "groups": list(s.groups),
                    "quorum": s.quorum,
                    "timeout_seconds": s.timeout.total_seconds() if s.timeout else None,
                    "reminder_seconds": [r.total_seconds() for r in s.reminders],
                    "escalate_to": {
                        "users": list(s.escalate_users),
                        "groups": list(s.escalate_groups),
                    },
                }
                for s in self.policy.stages
            ],
            "on_timeout": self.policy.on_timeout,
            "grant": {
                "ttl_seconds": self.policy.grant.ttl.total_seconds(),
                "uses": self.policy.grant.uses,
            },
        }


_CACHE_LIMIT = 4096


class PolicySet:
    """An ordered, immutable set of policies plus the default, with its digest."""

    def __init__(self, policies: list[Policy], default: Policy, digest: str) -> None:
        self.policies = tuple(policies)
        self.default = default
        self.digest = digest
        self._by_type: dict[str, list[int]] = {}
        self._any_type: list[int] = []
        for i, p in enumerate(self.policies):
            exact = p.exact_types
            if exact is None:
                self._any_type.append(i)
            else:
                for t in exact:
                    self._by_type.setdefault(t, []).append(i)
        self._candidates: dict[str, tuple[Policy, ...]] = {}
        used: set[str] = set()
        for p in (*self.policies, default):
            if p.condition is not None:
                used.update(p.condition.program.functions())
        # Registering a function on a context costs time on every evaluation, so only
        # the extension functions these conditions call are registered.
        self.cel_functions = {
            name: fn
            for name, fn in cel.stdlib.STDLIB_FUNCTIONS.items()
            if name in used or name.rsplit(".", 1)[-1] in used
        }
        # Whether a condition reads the requester's record (history.*, first_seen): only
        # then is it looked up (and only when such a condition runs).
        self.uses_history = bool(used & {"approved", "executed", "denied"}) or any(
            p.condition is not None and "first_seen" in p.condition.source
            for p in (*self.policies, default)
        )

    def __len__(self) -> int:
        return len(self.policies)

    def by_name(self, name: str) -> Policy | None:
        if name == self.default.name:
            return self.default
        return next((p for p in self.policies if p.name == name), None)

    def candidates(self, action_type: str) -> tuple[Policy, ...]:
        """Policies that may match this type, in evaluation order."""
        found = self._candidates.get(action_type)
        if found is None:
            idx = sorted(set(self._by_type.get(action_type, [])) | set(self._any_type))
            found = tuple(
                self.policies[i] for i in idx if self.policies[i].type_matches(action_type)
            )
            if len(self._candidates) < _CACHE_LIMIT:
                self._candidates[action_type] = found
        return found

    def evaluate(self, inp: EvaluationInput) -> Decision:
        """Decide fast: only candidate policies, CEL only when type and target match."""
        ctx = None
        for p in self.candidates(inp.action.type):
            if not p.target_matches(inp.action.target):
                continue
            if p.condition is not None:
                if ctx is None:
                    ctx = inp.cel_context(self.cel_functions, self.uses_history)
                try:
                    if not p.condition.evaluate(ctx):
                        continue
                except Exception as exc:  # CEL raises KeyError, TypeError, ValueError...
                    return _failed_closed(p, exc)
            return Decision(p, p.outcome, f"matched policy {p.name!r}")
        return Decision(self.default, self.default.outcome, "no policy matched: default outcome")

    def explain(self, inp: EvaluationInput) -> Decision:
        """Decide slowly, recording for every earlier policy which clause failed."""
        misses: list[Miss] = []
        ctx = None
        for p in self.policies:
            if not p.type_matches(inp.action.type):
                misses.append(
                    Miss(p.name, "type", f"type {inp.action.type!r} is not {_either(p.types)}")
                )
                continue
            if not p.target_matches(inp.action.target):
                misses.append(
                    Miss(
                        p.name,
                        "target",
                        f"target {inp.action.target!r} does not match {_either(p.targets)}",
                    )
                )
                continue
            if p.condition is not None:
                if ctx is None:
                    ctx = inp.cel_context(self.cel_functions, self.uses_history)
                try:
                    ok = p.condition.evaluate(ctx)
                except Exception as exc:
                    d = _failed_closed(p, exc)
                    return Decision(d.policy, d.outcome, d.reason, tuple(misses), d.error)
                if not ok:
                    misses.append(
                        Miss(p.name, "condition", f"condition is false: {p.condition.source}")
                    )
                    continue
            return Decision(p, p.outcome, f"matched policy {p.name!r}", tuple(misses))
        return Decision(
            self.default,
            self.default.outcome,
            "no policy matched: default outcome",
            tuple(misses),
        )


def _either(values: tuple[str, ...]) -> str:
    return " or ".join(repr(v) for v in values)


def _failed_closed(p: Policy, exc: Exception) -> Decision:
    message = f"{type(exc).__name__}: {exc}"
    return Decision(
        p,
        Outcome.DENY,
        f"condition of policy {p.name!r} could not be evaluated, so the request is denied",
        error=message,
    )
