"""Signoff's exceptions, one tree with a single root.

    SignoffError
    ├── InvalidInput            the caller's input is malformed or breaks a request rule (422)
    ├── PolicyError             a policy set does not load (each problem with file:line:column)
    ├── NotFound                no such request, grant, user or token (404)
    ├── Unauthenticated         no credentials, or credentials that are not valid (401)
    ├── Forbidden               authenticated, but not allowed to do this (403)
    │   ├── SelfApproval        a requester voting on their own request
    │   ├── NotEligible         a voter who is not an approver of the current stage
    │   └── Refused             refused for a stated ``reason`` (a machine-readable word)
    │       ├── GrantRefused    an invalid, expired, revoked, used-up or mismatched grant
    │       ├── LinkRefused     an approval link that is forged, expired or already used
    │       ├── StepUpRequired  a vote on a passkey stage without a fresh assertion
    │       └── PasskeyRefused  a passkey assertion or enrollment that does not verify
    ├── DatabaseUnavailable     the database cannot be reached or used (503)
    └── Conflict                the request is not in a state that allows this (409)
        ├── InvalidTransition   a state move the state machine does not have
        ├── AlreadyVoted        one person, one vote per request
        └── QuorumUnreachable   a stage needs more distinct approvers than it has

The API maps each class to one problem+json ``type`` and status (see ``code`` and
``status``); the CLI maps each to one exit code and a one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class SignoffError(Exception):
    """Root of every error Signoff raises on purpose."""

    code = "signoff-error"
    status = 400
    title = "Signoff error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(SignoffError):
    code = "invalid-input"
    status = 422
    title = "Invalid input"


@dataclass(frozen=True)
class PolicyProblem:
    """One problem in a policy file, located to the character."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PolicyError(SignoffError):
    code = "invalid-policy"
    status = 422
    title = "Invalid policy set"

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = problems
        lines = "\n".join(str(p) for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the policy set:\n{lines}")


class NotFound(SignoffError):
    code = "not-found"
    status = 404
    title = "Not found"


class Unauthenticated(SignoffError):
    code = "unauthenticated"
    status = 401
    title = "Not authenticated"


class Forbidden(SignoffError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class SelfApproval(Forbidden):
    code = "self-approval"
    title = "Requesters cannot vote on their own request"


class NotEligible(Forbidden):
    code = "not-eligible"
    title = "Not an approver of the current stage"


class Refused(Forbidden):
    """Refused for a stated reason, which the API returns as ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason=reason)
        self.reason = reason


class GrantRefused(Refused):
    code = "grant-refused"
    title = "Grant refused"


class LinkRefused(Refused):
    code = "link-refused"
    title = "Approval link refused"


class StepUpRequired(Refused):
    """The stage asks for a passkey (``approve_with: passkey``): the vote is not counted
    without a fresh WebAuthn assertion bound to it; the detail says where to finish."""

    code = "step-up-required"
    title = "This vote needs a passkey"

    def __init__(self, detail: str) -> None:
        super().__init__("passkey_required", detail)


class PasskeyRefused(Refused):
    code = "passkey-refused"
    title = "Passkey refused"


class Conflict(SignoffError):
    code = "conflict"
    status = 409
    title = "Conflict"


class InvalidTransition(Conflict):
    code = "invalid-transition"
    title = "Invalid state transition"


class AlreadyVoted(Conflict):
    code = "already-voted"
    title = "Already voted"


class QuorumUnreachable(Conflict):
    code = "quorum-unreachable"
    title = "Quorum unreachable"


class DatabaseUnavailable(SignoffError):
    code = "database-unavailable"
    status = 503
    title = "Database unavailable"


@dataclass
class ErrorList:
    """Collects problems instead of stopping at the first one."""

    problems: list[PolicyProblem] = field(default_factory=list)

    def add(self, file: str, line: int, column: int, message: str) -> None:
        self.problems.append(PolicyProblem(file, line, column, message))
