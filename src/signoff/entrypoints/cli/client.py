"""The CLI's client of the Signoff API: the SDK's HTTP layer and calls
(``signoff.sdk._http``, ``signoff.sdk._api``), answering with the API's JSON as it is,
and raising ``ApiError``, which ``problems.said`` words for the command line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from signoff import __version__
from signoff.sdk import _api
from signoff.sdk._http import TICK, ClientSettings, Problem, SyncSession

__all__ = ["ApiError", "ClientSettings", "SignoffClient"]


class ApiError(Exception):
    """A problem+json answer (or a transport failure) from the server."""

    def __init__(self, status: int, code: str, detail: str, body: dict[str, Any] | None = None):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body or {}

    @classmethod
    def of(cls, problem: Problem) -> ApiError:
        return cls(problem.status, problem.code, problem.detail, dict(problem.body))


class SignoffClient:
    """``renew``, when given, makes a new bearer token (``signoff login``'s refresh):
    a call answered 401 is made once more with it."""

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = 30.0,
        renew: Callable[[], str] | None = None,
    ) -> None:
        self.session = SyncSession(
            url,
            token,
            timeout=timeout,
            user_agent=f"signoff-cli/{__version__}",
            renew=renew,
            error=ApiError.of,
        )
        self.url = self.session.url

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.session.call(method, path, **kwargs)

    def _json(self, call: _api.Call[Any]) -> dict[str, Any]:
        """The answer to one of the SDK's calls, as the API's JSON."""
        result: dict[str, Any] = self.session.call(call.method, call.path, **call.arguments())
        return result

    def me(self) -> dict[str, Any]:
        return self._json(_api.me())

    def report(self, params: dict[str, str]) -> dict[str, Any]:
        return self._json(_api.report(params["since"], params.get("until"), params.get("policy")))

    def replay(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json(_api.replay(body["files"], body["since"], body.get("until")))

    def create_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new request from the body ``request`` and ``run`` build."""
        result: dict[str, Any] = self._call("POST", "/v1/requests", json=body)
        return result

    def execute(self, request_id: str) -> dict[str, Any]:
        return self._json(_api.execute(request_id))

    def get_request(self, request_id: str) -> dict[str, Any]:
        return self._json(_api.get(request_id))

    def list_requests(
        self,
        status: str | None = None,
        requester: str | None = None,
        awaiting: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        return self._json(_api.listing(status, requester, awaiting, None, limit))

    def vote(self, request_id: str, decision: str, comment: str) -> dict[str, Any]:
        return self._json(_api.vote(request_id, decision, comment))

    def cancel(self, request_id: str, comment: str) -> dict[str, Any]:
        return self._json(_api.cancel(request_id, comment))

    def redeem(self, token: str, action: dict[str, Any]) -> dict[str, Any]:
        return self._json(_api.redeem(token, action["type"], action["target"], action["params"]))

    def revoke(self, grant_id: str, comment: str) -> dict[str, Any]:
        return self._json(_api.revoke_grant(grant_id, comment))

    def jwks(self) -> dict[str, Any]:
        return self._json(_api.jwks())

    def events(self, request_id: str, last_event_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Server-sent events of one request; yields each event's data (with ``seq``)."""
        for event in self.session.events(request_id, last_event_id):
            if event is not TICK:
                yield event
