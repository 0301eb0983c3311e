"""What the SDK raises for each answer the API can give, on an in-memory transport: the
server's own error by problem type, with its members; ``ServerError`` for what is no
problem of Signoff's; ``Unreachable`` for no answer."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

import signoff
from signoff.domain.errors import StepUpRequired

TYPE = "https://signoff.dev/problems/"


def answering(status: int, body: Any = None, text: str = "") -> signoff.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, text=text)
        return httpx.Response(status, json=body)

    return signoff.Client("http://signoff.test", "so_x", transport=httpx.MockTransport(handle))


def problem(code: str, status: int, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": TYPE + code, "title": code, "status": status, "detail": detail, **extra}


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("not-found", 404, signoff.NotFound),
        ("unauthenticated", 401, signoff.Unauthenticated),
        ("forbidden", 403, signoff.Forbidden),
        ("self-approval", 403, signoff.SelfApproval),
        ("not-eligible", 403, signoff.NotEligible),
        ("invalid-transition", 409, signoff.InvalidTransition),
        ("already-voted", 409, signoff.AlreadyVoted),
        ("quorum-unreachable", 409, signoff.QuorumUnreachable),
        ("conflict", 409, signoff.Conflict),
        ("invalid-input", 422, signoff.InvalidInput),
        ("validation-error", 422, signoff.InvalidInput),
        ("invalid-body", 400, signoff.InvalidInput),
        ("too-large", 413, signoff.InvalidInput),
    ],
)
def test_a_problem_is_raised_as_the_servers_error(
    code: str, status: int, error: type[signoff.SignoffError]
) -> None:
    body = problem(code, status, "said why", field="reason")
    with answering(status, body) as c, pytest.raises(error) as raised:
        c.get("abcdef12")
    assert type(raised.value) is error
    assert raised.value.detail == "said why" and raised.value.extra == {"field": "reason"}


def test_refusals_keep_their_reason_and_policy_problems_their_places() -> None:
    body = problem("grant-refused", 403, "the grant is used up", reason="used_up")
    with answering(403, body) as c, pytest.raises(signoff.GrantRefused) as refused:
        c.redeem("t", "deploy", "prod/api")
    assert refused.value.reason == "used_up" and refused.value.detail == "the grant is used up"
    step_up = problem("step-up-required", 403, "finish on the web page", reason="x")
    with answering(403, step_up) as c, pytest.raises(StepUpRequired) as needed:
        c.approve("abcdef12")
    assert needed.value.detail == "finish on the web page"
    places = [{"file": "a.yaml", "line": 3, "column": 5, "message": "unknown key"}]
    invalid = problem("invalid-policy", 422, "1 problem(s)", problems=places)
    with answering(422, invalid) as c, pytest.raises(signoff.PolicyError) as bad:
        c.replay_policies({"a.yaml": "x"})
    assert [str(p) for p in bad.value.problems] == ["a.yaml:3:5: unknown key"]


def test_what_is_no_problem_of_signoffs_is_a_server_error() -> None:
    with (
        answering(502, text="<html>Bad Gateway</html>") as c,
        pytest.raises(signoff.ServerError) as proxy,
    ):
        c.me()
    assert proxy.value.status == 502 and proxy.value.detail == "<html>Bad Gateway</html>"
    internal = problem("internal-error", 500, "the server could not complete this request")
    with answering(500, internal) as c, pytest.raises(signoff.ServerError) as failed:
        c.me()
    assert failed.value.status == 500


def test_no_answer_is_unreachable_sync_and_async() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    transport = httpx.MockTransport(refuse)
    c = signoff.Client("http://signoff.test/", "x", transport=transport)
    with c, pytest.raises(signoff.Unreachable, match=r"cannot reach http://signoff.test: "):
        c.me()

    async def main() -> None:
        async with signoff.AsyncClient("http://signoff.test", "x", transport=transport) as c:
            await c.me()

    with pytest.raises(signoff.Unreachable):
        asyncio.run(main())


def test_a_client_sends_its_token_and_names_itself() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"name": "dave", "admin": False, "groups": ["sre"]})

    transport = httpx.MockTransport(handle)
    with signoff.Client("http://signoff.test", "so_x", transport=transport) as c:
        assert c.me() == signoff.Identity("dave", None, False, ("sre",), {})
    assert seen[0].headers["Authorization"] == "Bearer so_x"
    assert seen[0].headers["User-Agent"] == f"signoff-python/{signoff.__version__}"


def test_url_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNOFF_URL", "http://from-env.test:9")
    monkeypatch.setenv("SIGNOFF_TOKEN", "so_env")
    with signoff.Client() as c:
        assert c.url == "http://from-env.test:9"
    with signoff.Client("http://given.test", "so_given") as c:
        assert c.url == "http://given.test"


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"ratio": float("nan")}, "Out of range float values are not JSON compliant"),
        ({"path": "\ud800"}, "surrogates not allowed"),
        ({"when": object()}, "is not JSON serializable"),
    ],
)
def test_a_value_json_cannot_carry_is_invalid_input_and_nothing_is_sent(
    params: dict[str, Any], why: str
) -> None:
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    transport = httpx.MockTransport(handle)
    with (
        signoff.Client("http://signoff.test", "so_x", transport=transport) as c,
        pytest.raises(signoff.InvalidInput) as refused,
    ):
        c.request("deploy", "prod/api", params)
    assert str(refused.value).startswith("the request cannot be sent as JSON: ")
    assert why in str(refused.value)

    async def ask() -> None:
        async with signoff.AsyncClient(
            "http://signoff.test", "so_x", transport=httpx.MockTransport(handle)
        ) as a:
            await a.request("deploy", "prod/api", params)

    with pytest.raises(signoff.InvalidInput):
        asyncio.run(ask())
    assert sent == []
