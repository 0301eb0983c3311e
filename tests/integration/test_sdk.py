"""The Python SDK against a real server: ``Client``, ``AsyncClient`` and
``@require_approval`` (approve, deny, timeout, cancel, sync and async, another call's
arguments), on SQLite and PostgreSQL.

Approvers act from a thread with their own client once the request awaits them, while
the decorated function waits on its event stream."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import signoff
from signoff import (
    AlreadyVoted,
    AsyncClient,
    Cancelled,
    Client,
    Denied,
    Forbidden,
    GrantRefused,
    InvalidInput,
    InvalidTransition,
    NotFound,
    SelfApproval,
    Status,
    TimedOut,
    Unauthenticated,
    Unreachable,
    require_approval,
)
from tests.conftest import LiveServer

CHANGE = "config.change"  # one approval from the dba group (bob, carol)
TARGET = "app/settings"


def client(server: LiveServer, user: str) -> Client:
    return Client(server.url, server.tokens[user])


def aclient(server: LiveServer, user: str) -> AsyncClient:
    return AsyncClient(server.url, server.tokens[user])


def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a plain or a coroutine function to its end."""
    result = fn(*args, **kwargs)
    return asyncio.run(result) if inspect.iscoroutine(result) else result


class Approver:
    """A person in another thread: once a request awaits them, they act on it
    (``act(client, request_id)``); ``request_id`` is then the request they saw."""

    def __init__(self, server: LiveServer, user: str, act: Callable[[Client, str], Any]) -> None:
        self.server, self.user, self.act = server, user, act
        self.request_id: str | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with client(self.server, self.user) as c:
                deadline = time.monotonic() + 20
                while not (page := c.inbox()).items:
                    assert time.monotonic() < deadline, f"nothing reached {self.user}"
                    time.sleep(0.02)
                self.request_id = page.items[0].id
                self.act(c, self.request_id)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def __enter__(self) -> Approver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


def approve(c: Client, request_id: str) -> None:
    c.approve(request_id, "looks right")


def deny(c: Client, request_id: str) -> None:
    c.deny(request_id, "not this week")


def changes(server: LiveServer, mode: str, calls: list[tuple[str, int]], **options: Any) -> Any:
    """``set_value(key, value)`` guarded by ``require_approval`` as dave, plain or async."""
    options.setdefault("reason", lambda key, value: f"set {key}")
    if mode == "sync":

        @require_approval(type=CHANGE, target=TARGET, client=client(server, "dave"), **options)
        def set_value(key: str, value: int = 1) -> str:
            calls.append((key, value))
            return f"{key}={value}"

        return set_value

    @require_approval(type=CHANGE, target=TARGET, client=lambda: aclient(server, "dave"), **options)
    async def set_value_async(key: str, value: int = 1) -> str:
        calls.append((key, value))
        return f"{key}={value}"

    return set_value_async


MODES = ["sync", "async"]


@pytest.fixture
def dave(server: LiveServer) -> Iterator[Client]:
    with client(server, "dave") as c:
        yield c


@pytest.mark.parametrize("mode", MODES)
def test_an_approved_call_runs_once_with_its_arguments_and_spends_the_grant(
    server: LiveServer, dave: Client, mode: str
) -> None:
    calls: list[tuple[str, int]] = []
    set_value = changes(server, mode, calls)
    with Approver(server, "bob", approve) as bob:
        assert run(set_value, "limit", value=5) == "limit=5"
    assert calls == [("limit", 5)]
    assert bob.request_id is not None
    done = dave.get(bob.request_id)
    assert done.action == signoff.Action(CHANGE, TARGET, {"key": "limit", "value": 5})
    assert done.reason == "set limit"
    assert done.status is Status.EXECUTED
    assert done.grant is not None and done.grant.uses_left == 0
    assert [v.voter for v in done.votes] == ["bob"]


@pytest.mark.parametrize("mode", MODES)
def test_a_denied_call_never_runs_and_says_who_denied_it_and_why(
    server: LiveServer, mode: str
) -> None:
    calls: list[tuple[str, int]] = []
    set_value = changes(server, mode, calls)
    with Approver(server, "bob", deny), pytest.raises(Denied) as denied:
        run(set_value, "limit")
    assert calls == []
    assert denied.value.request is not None
    assert denied.value.request.status is Status.DENIED
    assert str(denied.value) == f"request {denied.value.request.id} denied by bob: not this week"


@pytest.mark.parametrize("mode", MODES)
def test_a_call_nobody_decides_in_time_is_cancelled_and_never_runs(
    server: LiveServer, dave: Client, mode: str
) -> None:
    calls: list[tuple[str, int]] = []
    set_value = changes(server, mode, calls, timeout=0.3)
    with pytest.raises(TimedOut) as late:
        run(set_value, "limit")
    assert calls == []
    assert late.value.request is not None
    assert dave.get(late.value.request.id).status is Status.CANCELLED
    assert str(late.value) == (
        f"request {late.value.request.id}: nobody decided within 0.3 s; it was cancelled"
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_call_its_requester_cancels_never_runs(
    server: LiveServer, dave: Client, mode: str
) -> None:
    calls: list[tuple[str, int]] = []
    set_value = changes(server, mode, calls)

    def cancel_mine() -> None:
        deadline = time.monotonic() + 20
        while not (page := dave.list(status="pending")).items:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        dave.cancel(page.items[0].id, "wrong window")

    canceller = threading.Thread(target=cancel_mine)
    canceller.start()
    try:
        with pytest.raises(Cancelled) as cancelled:
            run(set_value, "limit")
    finally:
        canceller.join(30)
    assert calls == []
    assert cancelled.value.request is not None
    assert str(cancelled.value).endswith("cancelled by dave: wrong window")


def test_a_grant_for_one_call_does_not_run_another(server: LiveServer, dave: Client) -> None:
    asked = dave.request(CHANGE, TARGET, {"key": "limit", "value": 5})
    with client(server, "bob") as bob:
        bob.approve(asked.id)
    granted = dave.get(asked.id)
    assert granted.approved and granted.grant is not None and granted.grant.token
    token = granted.grant.token
    # the server refuses the token for other arguments, and no use is spent
    with pytest.raises(GrantRefused) as refused:
        dave.redeem(token, CHANGE, TARGET, {"key": "limit", "value": 6})
    assert refused.value.extra["reason"] == "action_mismatch"
    assert dave.get(asked.id).grant.uses_left == 1  # type: ignore[union-attr]
    # checked offline, the token holds for its own arguments only
    claims = dave.verify_grant(token, CHANGE, TARGET, {"key": "limit", "value": 5})
    assert claims["rid"] == asked.id and claims["jti"] == granted.grant.id
    with pytest.raises(GrantRefused, match="the action differs from the approved action"):
        dave.verify_grant(token, CHANGE, TARGET, {"key": "limit", "value": 6}, jwks=dave.jwks())
    # a decorated call with other arguments asks anew; denied, it does not run
    calls: list[tuple[str, int]] = []
    set_value = changes(server, "sync", calls)
    with Approver(server, "bob", deny) as bob_denies, pytest.raises(Denied):
        set_value("limit", 6)
    assert calls == [] and bob_denies.request_id != asked.id
    # the first approval still stands for its own arguments
    spent = dave.redeem(token, CHANGE, TARGET, {"key": "limit", "value": 5})
    assert spent.uses_left == 0 and spent.status is Status.EXECUTED


def test_a_call_folded_into_the_same_pending_request_runs_once_it_is_approved(
    server: LiveServer, dave: Client
) -> None:
    asked = dave.request(CHANGE, TARGET, {"key": "limit", "value": 1})
    calls: list[tuple[str, int]] = []
    set_value = changes(server, "sync", calls)
    with Approver(server, "bob", approve) as bob:
        assert set_value("limit") == "limit=1"
    assert bob.request_id == asked.id and calls == [("limit", 1)]
    done = dave.get(asked.id)
    assert done.fold_count == 1 and done.status is Status.EXECUTED


def test_two_identical_calls_at_once_share_one_approval_and_one_of_them_runs(
    server: LiveServer,
) -> None:
    calls: list[tuple[str, int]] = []
    set_value = changes(server, "sync", calls)
    outcomes: list[object] = []

    def call() -> None:
        try:
            outcomes.append(set_value("limit", 2))
        except GrantRefused as exc:
            outcomes.append(exc.reason)

    def approve_once_folded(c: Client, request_id: str) -> None:
        deadline = time.monotonic() + 20
        while c.get(request_id).fold_count < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        c.approve(request_id)

    callers = [threading.Thread(target=call) for _ in range(2)]
    with Approver(server, "bob", approve_once_folded):
        for t in callers:
            t.start()
        for t in callers:
            t.join(30)
    assert sorted(map(str, outcomes)) == ["limit=2", "used_up"]
    assert calls == [("limit", 2)]


@pytest.mark.parametrize("mode", MODES)
def test_an_action_the_policy_allows_runs_without_asking_anyone(
    server: LiveServer, dave: Client, mode: str
) -> None:
    ran: list[str] = []
    if mode == "sync":

        @require_approval("sql.execute", "pg/replica", params=lambda sql: {"sql": sql}, client=dave)
        def query(sql: str) -> int:
            ran.append(sql)
            return 1

    else:

        @require_approval(
            "sql.execute",
            "pg/replica",
            params=lambda sql: {"sql": sql},
            client=lambda: aclient(server, "dave"),
        )
        async def query(sql: str) -> int:
            ran.append(sql)
            return 1

    assert run(query, "SELECT 1") == 1
    assert ran == ["SELECT 1"]
    (done,) = dave.list().items
    assert done.status is Status.EXECUTED and done.outcome is not None


def test_named_params_are_the_action_and_other_arguments_are_not(
    server: LiveServer, dave: Client
) -> None:
    seen: list[object] = []

    @require_approval("sql.execute", "pg/replica", params=["sql"], client=dave)
    def query(sql: str, connection: object = None) -> None:
        seen.append(connection)

    marker = object()
    query("SELECT 2", connection=marker)
    assert seen == [marker]
    assert dave.list().items[0].action.params == {"sql": "SELECT 2"}
    with pytest.raises(TypeError, match="has no argument conn"):
        require_approval("x", "y", params=["conn"])(lambda sql: None)

    @require_approval("sql.execute", "pg/replica", client=dave)
    def raw(connection: object) -> None:
        raise AssertionError("must not run")

    with pytest.raises(InvalidInput, match="must be JSON"):
        raw(marker)


def test_errors_are_the_servers_own(server: LiveServer, dave: Client) -> None:
    with pytest.raises(NotFound):
        dave.get("0" * 32)
    mine = dave.request("deploy", "prod/api", {"ref": "v1"})  # two of dba and sre
    with pytest.raises(SelfApproval):
        dave.approve(mine.id)
    with client(server, "bob") as bob:
        with pytest.raises(Forbidden):
            bob.cancel(mine.id)
        bob.approve(mine.id)
        with pytest.raises(AlreadyVoted):
            bob.approve(mine.id)
        with client(server, "carol") as carol:
            carol.deny(mine.id)
        with pytest.raises(InvalidTransition):
            dave.cancel(mine.id)
    with pytest.raises(InvalidInput) as invalid:
        dave.request(CHANGE, TARGET, risk="extreme")
    assert invalid.value.extra["field"] == "context.risk"
    with Client(server.url, "so_not-a-token") as stranger, pytest.raises(Unauthenticated):
        stranger.me()
    with Client("http://127.0.0.1:9", "x") as nowhere, pytest.raises(Unreachable) as down:
        nowhere.me()
    assert "cannot reach http://127.0.0.1:9" in str(down.value)


def test_wait_follows_the_event_stream_through_each_stage(server: LiveServer) -> None:
    """secret.read: one of dba, then erin; on_update sees each change as it happens."""
    seen: list[tuple[str, int, int]] = []

    async def main() -> signoff.Request:
        async with aclient(server, "dave") as dave:
            asked = await dave.request("secret.read", "vault/db", {"path": "db/prod"})
            assert asked.pending and asked.still_needed == 1

            async def update(r: signoff.Request) -> None:
                seen.append((r.status.value, r.current_stage, len(r.votes)))
                if r.pending and r.current_stage == 1:
                    async with aclient(server, "erin") as erin:
                        await erin.approve(r.id)

            with Approver(server, "bob", approve):
                return await dave.wait(asked.id, on_update=update, timeout=20)

    done = asyncio.run(main())
    assert done.approved and done.outcome == "approved by erin"
    assert seen == [("pending", 1, 1), ("approved", 1, 2)]


def test_wait_gives_up_at_its_timeout_and_leaves_the_request_pending(
    server: LiveServer, dave: Client
) -> None:
    asked = dave.request(CHANGE, TARGET, {"key": "b"})
    with pytest.raises(TimedOut) as late:
        dave.wait(asked, timeout=0.2)
    assert late.value.request is not None and late.value.request.id == asked.id
    assert dave.get(asked.id).pending


class CutFirstStream(httpx.BaseTransport):
    """The network between a client and the server: it cuts the first event stream
    after its first event, and records the ``Last-Event-ID`` each stream asked with."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.streams: list[str | None] = []
        self.cut = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = self.inner.handle_request(request)
        if not request.url.path.endswith("/events"):
            return resp
        self.streams.append(request.headers.get("Last-Event-ID"))
        if len(self.streams) > 1:
            return resp
        cut = Cut(resp.stream, self.cut)
        return httpx.Response(resp.status_code, headers=resp.headers, stream=cut, request=request)

    def close(self) -> None:
        self.inner.close()


class Cut(httpx.SyncByteStream):
    def __init__(self, inner: Any, done: threading.Event) -> None:
        self.inner, self.done = inner, done

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            yield chunk
            if b"\r\n\r\n" in chunk or b"\n\n" in chunk:
                self.done.set()
                raise httpx.ReadError("connection reset by the test")

    def close(self) -> None:
        self.inner.close()


def test_a_dropped_event_stream_is_resumed_after_the_last_event_it_delivered(
    server: LiveServer, dave: Client
) -> None:
    asked = dave.request(CHANGE, TARGET, {"key": "c"})
    (submitted,) = [e["seq"] for e in dave.get(asked.id).raw["timeline"]]
    network = CutFirstStream()

    def approve_once_cut(c: Client, request_id: str) -> None:
        assert network.cut.wait(20)
        c.approve(request_id)

    with (
        Client(server.url, server.tokens["dave"], transport=network) as cut_off,
        Approver(server, "bob", approve_once_cut),
    ):
        done = cut_off.wait(asked.id, timeout=20)
    assert done.approved and done.outcome == "approved by bob"
    assert network.streams == [None, str(submitted)]
