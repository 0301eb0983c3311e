"""The HTTP layer the SDK and the CLI share: where the server is and which token to send,
one call (with a renewed token once on 401), a problem+json answer read into a
``Problem``, and a request's server-sent events.

A session is made with ``error``, what a ``Problem`` becomes when it is raised: the SDK
raises the ``SignoffError`` of its type (``error_for``), the CLI its own ``ApiError``
(which it words in command-line terms). Both sessions, sync and async, read answers and
events with the same functions here, so they only differ in how they wait.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from signoff import __version__
from signoff.domain import errors
from signoff.sdk._errors import ServerError, Unreachable

DEFAULT_URL = "http://127.0.0.1:8000"
# An event stream is quiet between changes, but for the server's keep-alive comments
# (every 15 s by default): a read that waits longer than this is a dead connection.
STREAM_READ_TIMEOUT = 120.0


@dataclass(frozen=True)
class ClientSettings:
    """Where the server is and the token to send: ``SIGNOFF_URL`` and ``SIGNOFF_TOKEN``.

    Read like the server's settings (``signoff.config``: the prefix, names in any case),
    without loading pydantic-settings, which a client does not need.
    """

    url: str = DEFAULT_URL
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

    def with_login(self) -> tuple[ClientSettings, Callable[[], str] | None]:
        """These settings when they have a token; else with the token of the stored
        login (``signoff login``) to this server (or, with no SIGNOFF_URL, to the server
        it was made with), renewed first when about to expire, and a way to renew it
        when the server answers 401. ``LoginError`` when it cannot be renewed."""
        from signoff.entrypoints.cli import credentials

        if self.token:
            return self, None
        login = credentials.load()
        if login is None or (self.url_set and login.url != self.url.rstrip("/")):
            return self, None
        if login.expiring():
            login = credentials.refreshed(login)
        held = login

        def renew() -> str:
            return credentials.refreshed(held).access_token

        return replace(self, url=login.url, token=login.access_token, logged_in=True), renew


@dataclass(frozen=True)
class Problem:
    """A refusal or failure: the problem+json ``type``'s last part (``code``), its
    ``detail``, and the whole body; status 0 when no answer came (``unreachable``)."""

    status: int
    code: str
    detail: str
    body: Mapping[str, Any] = field(default_factory=dict)


def json_object(resp: httpx.Response) -> dict[str, Any]:
    """An answer's body when it is a JSON object; else an empty one."""
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def problem_of(resp: httpx.Response) -> Problem:
    """The problem a 4xx or 5xx answer states; an answer that is not problem+json (a
    proxy's page) by its status and first characters."""
    body = json_object(resp)
    code = str(body.get("type", "")).rsplit("/", 1)[-1] or f"http-{resp.status_code}"
    detail = body.get("detail") or resp.text[:200] or resp.reason_phrase
    if isinstance(body.get("problems"), list):
        detail = "\n".join(
            f"{p['file']}:{p['line']}:{p['column']}: {p['message']}" for p in body["problems"]
        )
    return Problem(resp.status_code, code, str(detail), body)


def _error_classes() -> dict[str, type[errors.SignoffError]]:
    """The server's error classes (``signoff.domain.errors``) by their ``code``."""
    found: dict[str, type[errors.SignoffError]] = {}
    todo: list[type[errors.SignoffError]] = [errors.SignoffError]
    while todo:
        cls = todo.pop()
        if cls.__module__ == errors.__name__:
            found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found


# The server's answers by problem type; the API's own (FastAPI's validation and HTTP
# errors) where they mean the same.
_BY_CODE: dict[str, type[errors.SignoffError]] = {
    **_error_classes(),
    "validation-error": errors.InvalidInput,
    "invalid-body": errors.InvalidInput,
    "too-large": errors.InvalidInput,
}
_STANDARD = ("type", "title", "status", "detail")


def error_for(problem: Problem) -> errors.SignoffError:
    """The ``SignoffError`` a problem stands for: the class the server raised (by its
    problem type), with the detail and the body's other members (``reason``, ``field``,
    ``errors``) in ``extra``; ``Unreachable`` for no answer, ``ServerError`` for an
    answer of no known type."""
    extra = {k: v for k, v in problem.body.items() if k not in _STANDARD}
    cls = _BY_CODE.get(problem.code)
    if problem.status == 0:
        return Unreachable(problem.detail)
    if cls is None or cls is errors.SignoffError:
        err: errors.SignoffError = ServerError(problem.detail, **extra)
        err.status = problem.status
        return err
    if issubclass(cls, errors.PolicyError):
        return errors.PolicyError(
            [
                errors.PolicyProblem(p["file"], int(p["line"]), int(p["column"]), p["message"])
                for p in extra.get("problems") or []
            ]
        )
    if issubclass(cls, errors.StepUpRequired):
        return errors.StepUpRequired(problem.detail)
    if issubclass(cls, errors.Refused):
        return cls(str(extra.get("reason", "")), problem.detail)
    return cls(problem.detail, **extra)


def _quoted(part: str) -> str:
    from urllib.parse import quote

    return quote(part, safe="")


def path(*parts: str) -> str:
    """An API path from its parts, each one quoted: ``path("v1/requests", id)``."""
    head, *rest = parts
    return "/" + "/".join([head, *(_quoted(p) for p in rest)])


TICK: dict[str, Any] = {}  # a keep-alive comment: nothing happened, the stream lives


class EventLines:
    """Server-sent events from the lines of a stream (the WHATWG rules the API needs:
    ``id``, ``event``, ``data``, comments). ``line`` returns the data of an event it
    completes (JSON), ``TICK`` for a comment, or None."""

    def __init__(self) -> None:
        self.data: list[str] = []

    def line(self, line: str) -> dict[str, Any] | None:
        if line.startswith(":"):
            return TICK
        if line:
            name, _, value = line.partition(":")
            if name == "data":
                self.data.append(value.removeprefix(" "))
            return None
        if not self.data:
            return None
        text, self.data = "\n".join(self.data), []
        event: dict[str, Any] = json.loads(text)
        return event


def _headers(token: str, user_agent: str | None) -> dict[str, str]:
    headers = {"User-Agent": user_agent or f"signoff-python/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _stream_args(request_id: str, last_event_id: str | None, read: float) -> dict[str, Any]:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return {
        "method": "GET",
        "url": path("v1/requests", request_id, "events"),
        "headers": headers,
        "timeout": httpx.Timeout(30.0, read=read),
    }


class _Session:
    """What both sessions share: the server, the token's renewal, what a problem
    raises, and how an answer is read."""

    def __init__(
        self, url: str, renew: Callable[[], str] | None, error: Callable[[Problem], Exception]
    ) -> None:
        self.url = url.rstrip("/")
        self.renew = renew
        self.error = error

    def options(
        self, token: str, user_agent: str | None, timeout: float, transport: Any
    ) -> dict[str, Any]:
        """The arguments of the httpx client."""
        return {
            "base_url": self.url,
            "headers": _headers(token, user_agent),
            "timeout": httpx.Timeout(timeout),
            "transport": transport,
        }

    def renewal(self) -> Callable[[], str] | None:
        """The way to renew the token, taken: a call is made again once at most."""
        renew, self.renew = self.renew, None
        return renew

    def answer(self, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            raise self.error(problem_of(resp))
        return resp.json()

    def encoded(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """A JSON body encoded here, so a value JSON cannot carry (NaN, infinity, a lone
        surrogate, an object) is refused as invalid input naming why, before anything
        is sent, instead of escaping as the encoder's own exception."""
        if "json" not in kwargs:
            return kwargs
        rest = dict(kwargs)
        body = rest.pop("json")
        try:
            content = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise self.error(
                Problem(422, "invalid-input", f"the request cannot be sent as JSON: {exc}")
            ) from None
        headers = {**(rest.pop("headers", None) or {}), "Content-Type": "application/json"}
        return {**rest, "content": content, "headers": headers}

    def unreachable(self, exc: httpx.HTTPError) -> Exception:
        return self.error(Problem(0, "unreachable", f"cannot reach {self.url}: {exc}"))

    def interrupted(self, exc: httpx.HTTPError) -> Exception:
        return self.error(Problem(0, "unreachable", f"event stream interrupted: {exc}"))


class SyncSession(_Session):
    """One server, one token, one connection pool (httpx.Client)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        user_agent: str | None = None,
        transport: httpx.BaseTransport | None = None,
        renew: Callable[[], str] | None = None,
        error: Callable[[Problem], Exception] = error_for,
    ) -> None:
        super().__init__(url, renew, error)
        self.http = httpx.Client(**self.options(token, user_agent, timeout, transport))

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, where: str, **kwargs: Any) -> Any:
        """The JSON answer of one call; a problem raised as ``error`` makes it."""
        kwargs = self.encoded(kwargs)
        try:
            resp = self.http.request(method, where, **kwargs)
            if resp.status_code == 401 and (renew := self.renewal()) is not None:
                self.http.headers["Authorization"] = f"Bearer {renew()}"
                resp = self.http.request(method, where, **kwargs)
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from None
        return self.answer(resp)

    def events(
        self, request_id: str, last_event_id: str | None = None, read: float = STREAM_READ_TIMEOUT
    ) -> Iterator[dict[str, Any]]:
        """The request's events as they happen (each one's data, with ``seq``), and
        ``TICK`` for each keep-alive; ends when the server ends the stream (the request
        is final). ``read``: the longest quiet time before the stream counts as broken."""
        try:
            with self.http.stream(**_stream_args(request_id, last_event_id, read)) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self.answer(resp)
                lines = EventLines()
                for line in resp.iter_lines():
                    event = lines.line(line)
                    if event is not None:
                        yield event
        except httpx.HTTPError as exc:
            raise self.interrupted(exc) from None


class AsyncSession(_Session):
    """``SyncSession`` for asyncio (httpx.AsyncClient)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        user_agent: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        renew: Callable[[], str] | None = None,
        error: Callable[[Problem], Exception] = error_for,
    ) -> None:
        super().__init__(url, renew, error)
        self.http = httpx.AsyncClient(**self.options(token, user_agent, timeout, transport))

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, where: str, **kwargs: Any) -> Any:
        kwargs = self.encoded(kwargs)
        try:
            resp = await self.http.request(method, where, **kwargs)
            if resp.status_code == 401 and (renew := self.renewal()) is not None:
                token = await asyncio.to_thread(renew)
                self.http.headers["Authorization"] = f"Bearer {token}"
                resp = await self.http.request(method, where, **kwargs)
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from None
        return self.answer(resp)

    async def events(
        self, request_id: str, last_event_id: str | None = None, read: float = STREAM_READ_TIMEOUT
    ) -> AsyncIterator[dict[str, Any]]:
        try:
            async with self.http.stream(**_stream_args(request_id, last_event_id, read)) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    self.answer(resp)
                lines = EventLines()
                async for line in resp.aiter_lines():
                    event = lines.line(line)
                    if event is not None:
                        yield event
        except httpx.HTTPError as exc:
            raise self.interrupted(exc) from None


def session_settings(
    url: str | None, token: str | None
) -> tuple[ClientSettings, Callable[[], str] | None]:
    """The server and token a client was given, else ``SIGNOFF_URL`` and
    ``SIGNOFF_TOKEN``, else the stored login's (``ClientSettings.with_login``); a login
    that cannot be renewed is ``Unauthenticated``."""
    from signoff.entrypoints.cli.credentials import LoginError

    env = ClientSettings.from_env()
    given = ClientSettings(
        url=url if url is not None else env.url,
        token=token if token is not None else env.token,
        url_set=url is not None or env.url_set,
    )
    try:
        settings, renew = given.with_login()
    except LoginError as exc:
        raise errors.Unauthenticated(exc.message) from None
    if renew is None:
        return settings, None
    held = renew

    def renewed() -> str:
        try:
            return held()
        except LoginError as exc:
            raise errors.Unauthenticated(exc.message) from None

    return settings, renewed
