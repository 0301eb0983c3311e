"""The API's calls, each once: its method, path, body and how its answer is read
(``Call``), for ``Client`` and ``AsyncClient`` to send; and ``Follow``, the state of a
wait on a request's event stream that both drive."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from signoff.sdk._errors import TimedOut, Unreachable
from signoff.sdk._http import STREAM_READ_TIMEOUT, TICK, path
from signoff.sdk.models import Execution, Identity, Redemption, Request, RequestPage

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One call of the API and how its JSON answer becomes a value."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, Any] | None = None
    timeout: httpx.Timeout | None = None

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` after method and URL."""
        found: dict[str, Any] = {}
        if self.json is not None:
            found["json"] = self.json
        if self.params:
            found["params"] = {k: v for k, v in self.params.items() if v is not None}
        if self.timeout is not None:
            found["timeout"] = self.timeout
        return found


def _as_is(data: Any) -> dict[str, Any]:
    found: dict[str, Any] = data
    return found


def _action(type: str, target: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"type": type, "target": target, "params": dict(params or {})}


def _context(
    links: Sequence[str],
    labels: Mapping[str, str] | None,
    risk: str | None,
    diff: str | None,
) -> dict[str, Any]:
    context: dict[str, Any] = {"links": list(links), "labels": dict(labels or {})}
    if risk is not None:
        context["risk"] = risk
    if diff is not None:
        context["diff"] = diff
    return context


def create(
    type: str,
    target: str,
    params: Mapping[str, Any] | None,
    reason: str,
    ticket: str | None,
    links: Sequence[str],
    labels: Mapping[str, str] | None,
    risk: str | None,
    diff: str | None,
    redeem: bool = False,
) -> Call[Request]:
    body: dict[str, Any] = {
        "action": _action(type, target, params),
        "reason": reason,
        "ticket": ticket,
        "context": _context(links, labels, risk, diff),
    }
    if redeem:
        body["redeem"] = True
    return Call("POST", "/v1/requests", Request.from_json, json=body)


def get(request_id: str) -> Call[Request]:
    return Call("GET", path("v1/requests", request_id), Request.from_json)


def listing(
    status: str | None,
    requester: str | None,
    awaiting: str | None,
    cursor: str | None,
    limit: int,
) -> Call[RequestPage]:
    params = {
        "status": status,
        "requester": requester,
        "awaiting": awaiting,
        "cursor": cursor,
        "limit": limit,
    }
    return Call("GET", "/v1/requests", RequestPage.from_json, params=params)


def vote(request_id: str, decision: str, comment: str) -> Call[Request]:
    body = {"decision": decision, "comment": comment}
    return Call("POST", path("v1/requests", request_id, "votes"), Request.from_json, json=body)


def cancel(request_id: str, comment: str) -> Call[Request]:
    body = {"comment": comment}
    return Call("POST", path("v1/requests", request_id, "cancel"), Request.from_json, json=body)


def redeem(
    token: str, type: str, target: str, params: Mapping[str, Any] | None
) -> Call[Redemption]:
    body = {"token": token, "action": _action(type, target, params)}
    return Call("POST", "/v1/grants/redeem", Redemption.from_json, json=body)


def revoke_grant(grant_id: str, comment: str) -> Call[Request]:
    body = {"comment": comment}
    return Call("POST", path("v1/grants", grant_id, "revoke"), Request.from_json, json=body)


# The action runs for as long as its target allows.
EXECUTE_TIMEOUT = httpx.Timeout(30.0, read=3600.0)


def execute(request_id: str) -> Call[Execution]:
    where = path("v1/requests", request_id, "execute")
    return Call("POST", where, Execution.from_json, timeout=EXECUTE_TIMEOUT)


def _executions(data: Any) -> tuple[Execution, ...]:
    return tuple(Execution.from_json(x) for x in data)


def executions(request_id: str) -> Call[tuple[Execution, ...]]:
    return Call("GET", path("v1/requests", request_id, "executions"), _executions)


def evaluate(
    type: str,
    target: str,
    params: Mapping[str, Any] | None,
    as_user: str | None,
    ticket: str | None,
    links: Sequence[str],
    labels: Mapping[str, str] | None,
    risk: str | None,
    diff: str | None,
) -> Call[dict[str, Any]]:
    body: dict[str, Any] = {
        "action": _action(type, target, params),
        "ticket": ticket,
        "context": _context(links, labels, risk, diff),
    }
    if as_user is not None:
        body["as"] = as_user
    return Call("POST", "/v1/policies/evaluate", _as_is, json=body)


def me() -> Call[Identity]:
    return Call("GET", "/v1/me", Identity.from_json)


def jwks() -> Call[dict[str, Any]]:
    return Call("GET", "/.well-known/jwks.json", _as_is)


def report(since: str, until: str | None, policy: str | None) -> Call[dict[str, Any]]:
    params = {"since": since, "until": until, "policy": policy}
    return Call("GET", "/v1/analytics/report", _as_is, params=params)


def replay(files: Mapping[str, str], since: str, until: str | None) -> Call[dict[str, Any]]:
    body: dict[str, Any] = {"files": dict(files), "since": since}
    if until is not None:
        body["until"] = until
    return Call("POST", "/v1/policies/replay", _as_is, json=body)


def verified(
    token: str, keys: Mapping[str, Any], type: str, target: str, params: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A grant token's claims once it is checked offline against a JWKS document: its
    signature, its expiry, and that it was issued for exactly this action (its digest).
    ``GrantRefused`` with the reason when it does not hold; spends no use."""
    from datetime import UTC, datetime

    from signoff.adapters.signing import verify_with_jwks
    from signoff.domain.actions import Action
    from signoff.domain.errors import GrantRefused

    claims = verify_with_jwks(token, dict(keys), datetime.now(UTC))
    if claims["act"] != Action(type, target, dict(params or {})).digest:
        raise GrantRefused("action_mismatch", "the action differs from the approved action")
    return claims


# What of a request an event's snapshot carries; a change in any of them is an update.
_SNAPSHOT = ("status", "current_stage", "still_needed", "awaiting", "votes", "grant")
MAX_RECONNECTS = 20


class Follow:
    """A wait on one request: the request as last seen, the last event's id (to resume
    a dropped stream with ``Last-Event-ID``), the deadline, the reconnections so far."""

    def __init__(
        self,
        request: Request,
        timeout: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.request = request
        self.timeout = timeout
        self.clock = clock
        self.deadline = None if timeout is None else clock() + timeout
        self.last_id: str | None = None
        self.failures = 0

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def read_timeout(self) -> float:
        """How long the stream may stay quiet: past the deadline, the wait is over."""
        left = self.remaining()
        return STREAM_READ_TIMEOUT if left is None else max(0.01, min(left, STREAM_READ_TIMEOUT))

    def timed_out(self) -> TimedOut:
        return TimedOut(
            f"request {self.request.id} is still pending after {self.timeout:g} s of waiting "
            f"(it needs {self.request.still_needed} more approval(s))",
            self.request,
        )

    def check(self) -> None:
        """TimedOut when the deadline has passed."""
        left = self.remaining()
        if left is not None and left <= 0:
            raise self.timed_out()

    def seen(self, event: Mapping[str, Any]) -> Request | None:
        """Take in one event; the request as it is now when the event changed it."""
        if event is TICK:
            return None
        self.last_id = str(event["seq"])
        self.failures = 0
        snapshot = event.get("request") or {}
        before = {k: self.request.raw.get(k) for k in _SNAPSHOT}
        merged = {**self.request.raw, **{k: snapshot[k] for k in _SNAPSHOT if k in snapshot}}
        if {k: merged.get(k) for k in _SNAPSHOT} == before:
            return None
        self.request = Request.from_json(merged)
        return self.request

    def retry_after(self, problem: Unreachable) -> float:
        """Seconds to wait before reconnecting after the stream broke (none the first
        time, then doubling up to 5 s, never past the deadline); ``problem`` again after
        too many tries, and TimedOut once the deadline has passed."""
        self.check()
        self.failures += 1
        if self.failures > MAX_RECONNECTS:
            raise problem
        # at once the first time (a connection dropped by the way), then doubling
        delay = 0.0 if self.failures == 1 else min(5.0, 0.1 * 2.0**self.failures)
        left = self.remaining()
        return delay if left is None else max(0.0, min(delay, left))
