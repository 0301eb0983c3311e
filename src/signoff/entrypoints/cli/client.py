"""A small HTTP client for the Signoff API (used by the CLI; the seed of the SDK)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import connect_sse

from signoff import __version__


@dataclass(frozen=True)
class ClientSettings:
    """What the CLI needs to reach a server: ``SIGNOFF_URL`` and ``SIGNOFF_TOKEN``.

    Read like the server's settings (``signoff.config``: the prefix, names in any case),
    without loading pydantic-settings, which commands that only talk HTTP do not need.
    """

    url: str = "http://127.0.0.1:8000"
    token: str = ""
    # whether SIGNOFF_URL was set (else a stored login's server is used)
    url_set: bool = field(default=False, compare=False)
    # the token comes from `signoff login`, not SIGNOFF_TOKEN
    logged_in: bool = field(default=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientSettings:
        env = {k.lower(): v for k, v in (os.environ if environ is None else environ).items()}
        return cls(
            url=env.get("signoff_url", cls.url),
            token=env.get("signoff_token", cls.token),
            url_set="signoff_url" in env,
        )


class ApiError(Exception):
    """A problem+json answer (or a transport failure) from the server."""

    def __init__(self, status: int, code: str, detail: str, body: dict[str, Any] | None = None):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body or {}


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
        self.url = url.rstrip("/")
        self.renew = renew
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers["User-Agent"] = f"signoff-cli/{__version__}"
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout))

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
            if resp.status_code == 401 and self.renew is not None:
                renew, self.renew = self.renew, None  # once
                self.http.headers["Authorization"] = f"Bearer {renew()}"
                resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach {self.url}: {exc}") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = {}
            code = str(body.get("type", "")).rsplit("/", 1)[-1] or f"http-{resp.status_code}"
            detail = body.get("detail") or resp.text[:200] or resp.reason_phrase
            if isinstance(body.get("problems"), list):
                detail = "\n".join(
                    f"{p['file']}:{p['line']}:{p['column']}: {p['message']}"
                    for p in body["problems"]
                )
            raise ApiError(resp.status_code, code, str(detail), body)
        return resp.json()

    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/v1/me")
        return result

    def report(self, params: dict[str, str]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/v1/analytics/report", params=params)
        return result

    def replay(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/policies/replay", json=body)
        return result

    def create_request(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/requests", json=body)
        return result

    def execute(self, request_id: str) -> dict[str, Any]:
        # the action may run for as long as its target allows
        long = httpx.Timeout(30.0, read=3600.0)
        result: dict[str, Any] = self._call(
            "POST", f"/v1/requests/{request_id}/execute", timeout=long
        )
        return result

    def get_request(self, request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/requests/{request_id}")
        return result

    def list_requests(self, **params: Any) -> dict[str, Any]:
        clean = {k: v for k, v in params.items() if v is not None}
        result: dict[str, Any] = self._call("GET", "/v1/requests", params=clean)
        return result

    def vote(self, request_id: str, decision: str, comment: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST",
            f"/v1/requests/{request_id}/votes",
            json={"decision": decision, "comment": comment},
        )
        return result

    def cancel(self, request_id: str, comment: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/v1/requests/{request_id}/cancel", json={"comment": comment}
        )
        return result

    def redeem(self, token: str, action: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", "/v1/grants/redeem", json={"token": token, "action": action}
        )
        return result

    def revoke(self, grant_id: str, comment: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/v1/grants/{grant_id}/revoke", json={"comment": comment}
        )
        return result

    def evaluate(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/policies/evaluate", json=body)
        return result

    def jwks(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/.well-known/jwks.json")
        return result

    def events(self, request_id: str, last_event_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Server-sent events of one request; yields each event's data (with ``seq``)."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        timeout = httpx.Timeout(30.0, read=120.0)
        try:
            with connect_sse(
                self.http,
                "GET",
                f"/v1/requests/{request_id}/events",
                headers=headers,
                timeout=timeout,
            ) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    body = source.response.json()
                    raise ApiError(
                        source.response.status_code,
                        str(body.get("type", "")).rsplit("/", 1)[-1],
                        str(body.get("detail", "")),
                        body,
                    )
                for sse in source.iter_sse():
                    if sse.data:
                        data: dict[str, Any] = json.loads(sse.data)
                        yield data
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"event stream interrupted: {exc}") from None
