"""``signoff.Client``: the API, synchronously (``signoff.AsyncClient`` is its asyncio twin)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from signoff.sdk import _api
from signoff.sdk._errors import Unreachable
from signoff.sdk._http import SyncSession, session_settings
from signoff.sdk.models import Execution, Identity, Redemption, Request, RequestPage

T = TypeVar("T")


class Client:
    """A Signoff server, as the person or workload its token stands for.

    ``url`` and ``token`` default to ``SIGNOFF_URL`` and ``SIGNOFF_TOKEN``, then to the
    login ``signoff login`` keeps (renewed when the server answers 401). Every refusal
    raises the ``SignoffError`` the server raised (``NotFound``, ``Forbidden``,
    ``GrantRefused``, ...); a server that cannot be reached ``Unreachable``.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        user_agent: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        settings, renew = session_settings(url, token)
        self._session = SyncSession(
            settings.url,
            settings.token,
            timeout=timeout,
            user_agent=user_agent,
            transport=transport,
            renew=renew,
        )
        self.url = self._session.url

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: _api.Call[T]) -> T:
        return call.parse(self._session.call(call.method, call.path, **call.arguments()))

    def request(
        self,
        type: str,
        target: str,
        params: Mapping[str, Any] | None = None,
        *,
        reason: str = "",
        ticket: str | None = None,
        links: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        risk: str | None = None,
        diff: str | None = None,
        redeem: bool = False,
    ) -> Request:
        """Ask for approval of an action. The answer may already be decided (a policy
        allows or denies it), or be an identical pending request of yours it was
        folded into. ``redeem``: if a policy allows it at once, spend one use of the
        grant in the same call (you are about to perform the action yourself);
        ``Request.redeemed`` then says whether a use was taken."""
        return self._send(
            _api.create(type, target, params, reason, ticket, links, labels, risk, diff, redeem)
        )

    def get(self, request_id: str) -> Request:
        """One request (its whole id, or 8+ characters of it)."""
        return self._send(_api.get(request_id))

    def list(
        self,
        *,
        status: str | None = None,
        requester: str | None = None,
        awaiting: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> RequestPage:
        """Requests you may see, newest first, a page at a time (``limit`` at most 200)."""
        return self._send(_api.listing(status, requester, awaiting, cursor, limit))

    def inbox(self, limit: int = 200) -> RequestPage:
        """Requests awaiting your vote."""
        return self.list(awaiting="me", limit=limit)

    def wait(
        self,
        request: Request | str,
        *,
        timeout: float | None = None,
        on_update: Callable[[Request], object] | None = None,
    ) -> Request:
        """Follow the request's event stream until it is no longer pending; the request
        then. ``on_update`` is called with the request at each change meanwhile (a vote,
        a stage opened). ``TimedOut`` after ``timeout`` seconds, leaving the request
        pending. A dropped stream is resumed where it broke (``Last-Event-ID``)."""
        follow = _api.Follow(
            request if isinstance(request, Request) else self.get(request), timeout
        )
        while follow.request.pending:
            follow.check()
            try:
                rid = follow.request.id
                for event in self._session.events(rid, follow.last_id, follow.read_timeout()):
                    changed = follow.seen(event)
                    if changed is not None and on_update is not None:
                        on_update(changed)
                    if not follow.request.pending:
                        break
                    follow.check()
                follow.request = self.get(rid)
            except Unreachable as exc:
                time.sleep(follow.retry_after(exc))
        return follow.request

    def approve(self, request_id: str, comment: str = "") -> Request:
        return self._send(_api.vote(request_id, "approve", comment))

    def deny(self, request_id: str, comment: str = "") -> Request:
        """Deny a request (one denial ends it)."""
        return self._send(_api.vote(request_id, "deny", comment))

    def cancel(self, request_id: str, comment: str = "") -> Request:
        """Cancel a pending or approved request (its requester, or an admin)."""
        return self._send(_api.cancel(request_id, comment))

    def redeem(
        self, token: str, type: str, target: str, params: Mapping[str, Any] | None = None
    ) -> Redemption:
        """Spend one use of a grant, for exactly this action: the server refuses
        (``GrantRefused``) another action, an expired, revoked or used-up grant."""
        return self._send(_api.redeem(token, type, target, params))

    def verify_grant(
        self,
        token: str,
        type: str,
        target: str,
        params: Mapping[str, Any] | None = None,
        *,
        jwks: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Check a grant token offline: its signature (against ``jwks``, by default the
        server's keys), its expiry, and that it was issued for exactly this action. The
        token's claims (``jti`` the grant, ``rid`` the request, ``sub``, ``uses``,
        ``exp``); ``GrantRefused`` with the reason when it does not hold. Spends no use:
        ``redeem`` does."""
        keys = jwks if jwks is not None else self.jwks()
        return _api.verified(token, keys, type, target, params)

    def revoke_grant(self, grant_id: str, comment: str = "") -> Request:
        """Revoke a grant (admins)."""
        return self._send(_api.revoke_grant(grant_id, comment))

    def execute(self, request_id: str) -> Execution:
        """Have Signoff run an approved request's action on its target (one use)."""
        return self._send(_api.execute(request_id))

    def executions(self, request_id: str) -> tuple[Execution, ...]:
        """What ran for a request, oldest first."""
        return self._send(_api.executions(request_id))

    def evaluate(
        self,
        type: str,
        target: str,
        params: Mapping[str, Any] | None = None,
        *,
        as_user: str | None = None,
        ticket: str | None = None,
        links: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        risk: str | None = None,
        diff: str | None = None,
    ) -> dict[str, Any]:
        """What the policies would decide for this action (a dry run, nothing stored)."""
        return self._send(
            _api.evaluate(type, target, params, as_user, ticket, links, labels, risk, diff)
        )

    def me(self) -> Identity:
        """Who the token stands for."""
        return self._send(_api.me())

    def jwks(self) -> dict[str, Any]:
        """The server's public keys, to check grant tokens offline."""
        return self._send(_api.jwks())

    def report(
        self, since: str = "30d", until: str | None = None, policy: str | None = None
    ) -> dict[str, Any]:
        """How the approval flow behaved (``signoff report``)."""
        return self._send(_api.report(since, until, policy))

    def replay_policies(
        self, files: Mapping[str, str], since: str = "30d", until: str | None = None
    ) -> dict[str, Any]:
        """What a candidate policy set (file names to texts) would have changed over
        the stored asks of a window (admins; ``signoff policy replay``)."""
        return self._send(_api.replay(files, since, until))
