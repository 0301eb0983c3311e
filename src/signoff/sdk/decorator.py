"""``@require_approval``: a function that runs only once a person (or a policy) approved
exactly the call being made.

At each call: the call's arguments become the action's params, a request is made for
them, and the call waits for its decision; once approved, one use of the grant is
redeemed for exactly that action (the server checks the digest), and only then does the
function run. Otherwise ``Denied``, ``TimedOut`` or ``Cancelled`` (the function never
ran). A coroutine function waits with ``AsyncClient``, any other with ``Client``.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from signoff.domain.errors import Conflict, InvalidInput
from signoff.domain.requests import Status
from signoff.sdk._errors import Cancelled, Denied, NotApproved, TimedOut
from signoff.sdk.aio import AsyncClient
from signoff.sdk.client import Client
from signoff.sdk.models import Grant, Request

P = ParamSpec("P")
R = TypeVar("R")

Params = Callable[..., Mapping[str, Any]] | Sequence[str] | None
Text = str | Callable[..., str]
ClientChoice = Client | AsyncClient | Callable[[], Client | AsyncClient] | None

# What each way of ending without a usable grant raises.
_ENDED: dict[Status, type[NotApproved]] = {
    Status.DENIED: Denied,
    Status.REVOKED: Denied,
    Status.CANCELLED: Cancelled,
    Status.TIMED_OUT: TimedOut,
    Status.EXPIRED: TimedOut,
}


def ended(request: Request) -> NotApproved:
    """The error for a request that ended without a grant to use: its ``outcome`` line
    ("request 1b2c... denied by bob: too broad")."""
    why = request.outcome or f"is {request.status.value.replace('_', ' ')}"
    return _ENDED.get(request.status, Denied)(f"request {request.id} {why}", request)


@dataclass(frozen=True)
class Approval:
    """What ``require_approval`` asks for, and how a call's arguments become it."""

    type: str
    target: Text
    params: Params
    reason: Text
    ticket: str | None
    labels: Mapping[str, str] | None
    risk: str | None
    timeout: float | None
    signature: inspect.Signature
    name: str

    def action(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, dict[str, Any], str]:
        """The call's target, params (checked to be JSON) and reason."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        target = self.target(*bound.args, **bound.kwargs) if callable(self.target) else self.target
        reason = self.reason(*bound.args, **bound.kwargs) if callable(self.reason) else self.reason
        if self.params is None:
            params = dict(bound.arguments)
        elif callable(self.params):
            params = dict(self.params(*bound.args, **bound.kwargs))
        else:
            params = {name: bound.arguments[name] for name in self.params}
        try:
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"the params of {self.name} must be JSON (name them with params=): {exc}"
            ) from None
        return target, params, reason

    def grant(self, request: Request) -> Grant:
        """The request's grant to redeem, or why there is none. A grant whose uses
        another call took meanwhile (two identical calls folded into one request) is
        redeemed all the same: the server refuses it (``GrantRefused``, used up)."""
        if request.status not in (Status.APPROVED, Status.EXECUTED, Status.FAILED):
            raise ended(request)
        if request.grant is None or not request.grant.token:
            raise Denied(f"request {request.id} is approved but shows you no grant token", request)
        return request.grant

    def context(self, reason: str) -> dict[str, Any]:
        """The request's other arguments: its reason and the decorator's context."""
        return {"reason": reason, "ticket": self.ticket, "labels": self.labels, "risk": self.risk}

    def comment(self) -> str:
        return f"{self.name} stopped waiting after {self.timeout:g} s"

    def gave_up(self, request: Request, last: Request | None) -> TimedOut:
        """The error once the wait ran out and the request was cancelled (``last``:
        the request then; None when it was decided meanwhile and not cancelled)."""
        now = last or request
        then = "it was cancelled" if now.status is Status.CANCELLED else f"it is {now.status}"
        return TimedOut(
            f"request {request.id}: nobody decided within {self.timeout:g} s; {then}", now
        )


def require_approval(
    type: str,
    target: Text,
    params: Params = None,
    *,
    reason: Text = "",
    ticket: str | None = None,
    labels: Mapping[str, str] | None = None,
    risk: str | None = None,
    timeout: float | None = None,
    client: ClientChoice = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the decorated function only with an approval of exactly this call.

    ``params``: the action's params from the call's arguments (bound to the function's
    signature, defaults applied): a function called with the same arguments that
    returns them, or a list of argument names; by default every argument (each value
    must be JSON). ``target`` and ``reason`` may be functions of the arguments too.
    ``timeout``: seconds to wait; then the request is cancelled and ``TimedOut`` raised
    (by default the server's deadlines decide). ``client``: a ``Client`` (for a plain
    function) or ``AsyncClient`` (for a coroutine function), used and left open; or a
    function that makes one at each call, closed after it; by default one made from
    ``SIGNOFF_URL`` and ``SIGNOFF_TOKEN`` at each call.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)
        if params is not None and not callable(params):
            unknown = [n for n in params if n not in signature.parameters]
            if unknown:
                raise TypeError(f"{fn.__qualname__} has no argument {', '.join(unknown)}")
        plan = Approval(
            type, target, params, reason, ticket, labels, risk, timeout, signature, fn.__qualname__
        )
        if inspect.iscoroutinefunction(fn):
            if isinstance(client, Client):
                raise TypeError(f"{fn.__qualname__} is a coroutine function: give an AsyncClient")
            return cast("Callable[P, R]", _async_wrapper(fn, plan, client))
        if isinstance(client, AsyncClient):
            raise TypeError(f"{fn.__qualname__} is not a coroutine function: give a Client")
        return _sync_wrapper(fn, plan, client)

    return decorate


def _sync_wrapper(fn: Callable[P, R], plan: Approval, choice: ClientChoice) -> Callable[P, R]:
    @functools.wraps(fn)
    def approved_call(*args: P.args, **kwargs: P.kwargs) -> R:
        target, params, reason = plan.action(args, kwargs)
        made = choice() if callable(choice) else choice or Client()
        if not isinstance(made, Client):
            raise TypeError(f"{plan.name} is not a coroutine function: its client must be sync")
        try:
            r = made.request(plan.type, target, params, **plan.context(reason))
            try:
                r = made.wait(r, timeout=plan.timeout)
            except TimedOut as exc:
                try:
                    last: Request | None = made.cancel(r.id, plan.comment())
                except Conflict:  # decided meanwhile: it does not run all the same
                    last = exc.request
                raise plan.gave_up(r, last) from None
            grant = plan.grant(r)
            made.redeem(grant.token or "", plan.type, target, params)
        finally:
            if made is not choice:
                made.close()
        return fn(*args, **kwargs)

    return approved_call


def _async_wrapper(
    fn: Callable[P, Awaitable[R]], plan: Approval, choice: ClientChoice
) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def approved_call(*args: P.args, **kwargs: P.kwargs) -> R:
        target, params, reason = plan.action(args, kwargs)
        made = choice() if callable(choice) else choice or AsyncClient()
        if not isinstance(made, AsyncClient):
            raise TypeError(
                f"{plan.name} is a coroutine function: its client must be an AsyncClient"
            )
        try:
            r = await made.request(plan.type, target, params, **plan.context(reason))
            try:
                r = await made.wait(r, timeout=plan.timeout)
            except TimedOut as exc:
                try:
                    last: Request | None = await made.cancel(r.id, plan.comment())
                except Conflict:  # decided meanwhile: it does not run all the same
                    last = exc.request
                raise plan.gave_up(r, last) from None
            grant = plan.grant(r)
            await made.redeem(grant.token or "", plan.type, target, params)
        finally:
            if made is not choice:
                await made.aclose()
        return await fn(*args, **kwargs)

    return approved_call
