"""`signoff mcp proxy` and `signoff mcp serve` as an agent uses them: the official MCP
SDK's client drives the proxy (over stdio, and over streamable HTTP), the proxy talks to
a real upstream MCP server built with the same SDK (tests/fixtures/mcp/upstream.py,
which writes down every call it receives) and to a real Signoff server.

Policies (tests/fixtures/mcp/policies): agents read freely, never delete, and bob
approves each write."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from signoff.bootstrap import build
from signoff.services.auth import create_token

from ..conftest import FIXTURES, LiveServer, make_settings
from .conftest import SIGNOFF, free_port, stop

pytestmark = pytest.mark.timeout(120)

MCP = FIXTURES / "mcp"
UPSTREAM = MCP / "upstream.py"


@dataclass
class Site:
    server: LiveServer
    tokens: dict[str, str]
    log: Path  # the upstream's record of calls
    tmp: Path
    http_proxy: str  # a proxy serving agents over streamable HTTP, masking results

    def env(self, user: str = "agent", **more: str) -> dict[str, str]:
        return {
            "SIGNOFF_URL": self.server.url,
            "SIGNOFF_TOKEN": self.tokens[user],
            "UPSTREAM_LOG": str(self.log),
            "PATH": "/usr/bin:/bin",
            **more,
        }

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def api(self, user: str) -> httpx.Client:
        return self.server.client(user)


def wait_for_url(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.05)


@pytest.fixture(scope="module")
def site(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with open_site(module_database_url, tmp_path_factory.mktemp("mcp")) as opened:
        yield opened


@contextlib.contextmanager
def open_site(database_url: str, tmp: Path) -> Iterator[Site]:
    """A Signoff server with the agents' policies, and a proxy serving agents over
    streamable HTTP (masking results), for one module's tests."""
    app = build(
        make_settings(
            database_url,
            tmp,
            policies_dir=MCP / "policies",
            users_file=MCP / "users.yaml",
        )
    )
    server = LiveServer(app).start()
    server.tokens["agent"] = create_token(app.services, "agent", "tests")
    tokens = server.tokens
    log = tmp / "upstream.jsonl"
    port = free_port()
    proxy_log = tmp / "http-proxy.log"
    partial = Site(server, tokens, log, tmp, f"http://127.0.0.1:{port}/mcp")
    with open(proxy_log, "w") as out:
        proc = subprocess.Popen(
            [
                *SIGNOFF,
                "mcp",
                "proxy",
                "--name",
                "files",
                "--listen",
                f"127.0.0.1:{port}",
                "--wait",
                "60s",
                "--progress-every",
                "1s",
                "--mask-key",
                "password",
                "--mask-pattern",
                r"sk-live-\d+",
                "--",
                sys.executable,
                str(UPSTREAM),
            ],
            env=partial.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_url(proc, partial.http_proxy, proxy_log)
        yield partial
    finally:
        stop([proc])
        server.stop()
        app.close()


def stdio_proxy(site: Site, *options: str, user: str = "agent") -> Client:
    return Client(
        StdioServerParameters(
            command=SIGNOFF[0],
            args=[
                *SIGNOFF[1:],
                "mcp",
                "proxy",
                "--name",
                "files",
                *options,
                "--",
                sys.executable,
                str(UPSTREAM),
            ],
            env=site.env(user),
        )
    )


def agent(site: Site, transport: str) -> Client:
    return stdio_proxy(site) if transport == "stdio" else Client(site.http_proxy)


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def pending_request(
    site: Site,
    target: str,
    known: frozenset[str] = frozenset(),
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The agent's pending request on ``target`` (not in ``known``; with these ``params``
    when given), once it exists."""
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(
        base_url=site.server.url, headers={"Authorization": f"Bearer {site.tokens['agent']}"}
    ) as api:
        while time.monotonic() < deadline:
            listed = (await api.get("/v1/requests", params={"status": "pending"})).json()
            for r in listed["items"]:
                mine = params is None or r["action"]["params"] == params
                if r["action"]["target"] == target and r["id"] not in known and mine:
                    return dict(r)
            await asyncio.sleep(0.05)
    raise AssertionError(f"no pending request on {target}")


async def vote(site: Site, user: str, request_id: str, decision: str, comment: str = "") -> None:
    async with httpx.AsyncClient(
        base_url=site.server.url, headers={"Authorization": f"Bearer {site.tokens[user]}"}
    ) as api:
        resp = await api.post(
            f"/v1/requests/{request_id}/votes", json={"decision": decision, "comment": comment}
        )
        assert resp.status_code == 200, resp.text


def timeline(site: Site, request_id: str) -> list[str]:
    with site.api("alice") as api:
        body = api.get(f"/v1/requests/{request_id}").json()
    return [e["type"] for e in body["timeline"]]


def newest(site: Site, target: str) -> dict[str, Any]:
    with site.api("agent") as api:
        body = api.get("/v1/requests", params={"limit": 50}).json()
    found = [r for r in body["items"] if r["action"]["target"] == target]
    return dict(found[0])


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())  # type: ignore[arg-type]


# --- the proxy -------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_the_tools_are_the_upstreams_and_an_allowed_call_runs_once(
    site: Site, transport: str
) -> None:
    path = f"notes-{transport}.txt"

    async def scenario() -> tuple[list[str], types.CallToolResult]:
        async with agent(site, transport) as client:
            tools = await client.list_tools()
            result = await client.call_tool("read_file", {"path": path})
        return [t.name for t in tools.tools], result

    names, result = run(scenario)
    assert sorted(names) == ["delete_file", "read_config", "read_file", "write_file"]
    assert not result.is_error, text(result)
    assert text(result) == f"contents of {path}"
    assert [c for c in site.calls() if c["arguments"].get("path") == path] == [
        {"tool": "read_file", "arguments": {"path": path}}
    ]
    r = newest(site, "mcp/files/read_file")
    assert r["action"] == {
        "type": "mcp.tool",
        "target": "mcp/files/read_file",
        "params": {"path": path},
    }
    assert r["requester"] == "agent" and r["policy"] == "agent-reads"
    assert r["grant"]["uses_left"] == 0  # the proxy spent the grant's one use
    assert timeline(site, r["id"]) == [
        "request.submitted",
        "request.approved",
        "grant.issued",
        "grant.redeemed",
        "request.executed",
    ]


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_denied_call_never_reaches_the_upstream(site: Site, transport: str) -> None:
    path = f"precious-{transport}.txt"

    async def scenario() -> types.CallToolResult:
        async with agent(site, transport) as client:
            return await client.call_tool("delete_file", {"path": path})

    result = run(scenario)
    assert result.is_error
    said = text(result)
    assert "Signoff denied the call to delete_file; it was not made." in said
    assert "agent-deletes" in said and "Agents never delete files" in said, said
    assert not [c for c in site.calls() if c["arguments"].get("path") == path]
    r = newest(site, "mcp/files/delete_file")
    assert r["status"] == "denied" and r["id"] in said
    assert timeline(site, r["id"]) == ["request.submitted", "request.denied"]


def test_a_person_behind_the_proxy_is_judged_as_a_person(site: Site) -> None:
    # agent-reads allows reads for the agents group only: frank's reads match nothing
    async def scenario() -> types.CallToolResult:
        async with stdio_proxy(site, user="frank") as client:
            return await client.call_tool("read_file", {"path": "frank.txt"})

    result = run(scenario)
    assert result.is_error and "no policy matched" in text(result), text(result)
    assert not [c for c in site.calls() if c["arguments"].get("path") == "frank.txt"]


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_reviewed_call_waits_with_progress_and_runs_once_approved(
    site: Site, transport: str
) -> None:
    path = f"release-{transport}.md"
    arguments = {"path": path, "content": "v1.2 ships today"}
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def scenario() -> tuple[types.CallToolResult, dict[str, Any]]:
        async with agent(site, transport) as client:
            call = asyncio.create_task(
                client.call_tool("write_file", arguments, progress_callback=on_progress)
            )
            r = await pending_request(site, "mcp/files/write_file")
            # waiting: progress arrives, and the upstream has not been called
            deadline = time.monotonic() + 20
            while not progress and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert not call.done()
            assert not [c for c in site.calls() if c["arguments"].get("path") == path]
            await vote(site, "bob", r["id"], "approve", "fine")
            return await call, r

    result, r = run(scenario)
    assert not result.is_error, text(result)
    assert text(result) == f"wrote 16 characters to {path}"
    assert [c for c in site.calls() if c["arguments"].get("path") == path] == [
        {"tool": "write_file", "arguments": arguments}
    ]
    assert progress, "no progress notification while waiting"
    first = progress[0][2] or ""
    assert f"Waiting for approval in Signoff (request {r['id']})" in first, first
    assert "1 more approval from bob" in first
    assert progress[0][1] == (600.0 if transport == "stdio" else 60.0)  # the proxy's --wait
    # the request shows the approvers the tool, what it does and the arguments
    assert "What the tool does: Write a file of the workspace" in r["reason"]
    assert r["action"]["params"] == arguments
    assert timeline(site, r["id"]) == [
        "request.submitted",
        "vote.cast",
        "request.approved",
        "grant.issued",
        "grant.redeemed",
        "request.executed",
    ]


def test_changed_arguments_never_run_under_another_calls_approval(site: Site) -> None:
    approved = {"path": "config.yaml", "content": "replicas: 3"}
    other = {"path": "config.yaml", "content": "replicas: 300"}

    async def scenario() -> tuple[types.CallToolResult, types.CallToolResult]:
        async with Client(site.http_proxy) as client:
            first = asyncio.create_task(client.call_tool("write_file", approved))
            r1 = await pending_request(site, "mcp/files/write_file")
            second = asyncio.create_task(client.call_tool("write_file", other))
            r2 = await pending_request(site, "mcp/files/write_file", frozenset({r1["id"]}))
            assert r1["action"]["params"] == approved and r2["action"]["params"] == other
            await vote(site, "bob", r1["id"], "approve")
            done = await first
            assert not second.done()
            await vote(site, "bob", r2["id"], "deny", "300 replicas is a typo")
            return done, await second

    done, refused = run(scenario)
    assert not done.is_error
    assert refused.is_error and "300 replicas is a typo" in text(refused)
    writes = [c for c in site.calls() if c["arguments"].get("path") == "config.yaml"]
    assert writes == [{"tool": "write_file", "arguments": approved}]


def test_a_grant_cannot_be_redeemed_for_other_arguments(site: Site) -> None:
    # What the proxy's forwarding relies on: the server refuses a grant for any action
    # but the approved one (and a spent grant for any action at all).
    async def scenario() -> dict[str, Any]:
        async with Client(site.http_proxy) as client:
            await client.call_tool("read_file", {"path": "a.txt"})
        return newest(site, "mcp/files/read_file")

    r = run(scenario)
    with site.api("agent") as api:
        token = api.get(f"/v1/requests/{r['id']}").json()["grant"]
        assert token["uses_left"] == 0
    other = {"type": "mcp.tool", "target": "mcp/files/read_file", "params": {"path": "b.txt"}}
    with site.api("agent") as api:
        fresh = api.post("/v1/requests", json={"action": other}).json()
        grant_token = fresh["grant"]["token"]
        changed = {**other, "params": {"path": "/etc/shadow"}}
        refused = api.post("/v1/grants/redeem", json={"token": grant_token, "action": changed})
        assert refused.status_code == 403, refused.text
        assert "digest" in refused.json()["detail"] or "action" in refused.json()["detail"]


def test_no_decision_in_time_is_a_denial_and_the_request_is_cancelled(site: Site) -> None:
    arguments = {"path": "late.txt", "content": "too late"}

    async def scenario() -> types.CallToolResult:
        async with stdio_proxy(site, "--wait", "1s") as client:
            return await client.call_tool("write_file", arguments)

    result = run(scenario)
    assert result.is_error
    said = text(result)
    assert "Nobody approved the call to write_file within 1s, so it was not made" in said, said
    assert "(no answer is a denial)" in said
    r = newest(site, "mcp/files/write_file")
    assert r["action"]["params"] == arguments
    assert r["status"] == "cancelled" and r["id"] in said
    assert "no decision within 1s" in (r["outcome"] or "")
    assert not [c for c in site.calls() if c["arguments"].get("path") == "late.txt"]
    # and an approval after the fact runs nothing
    with site.api("bob") as api:
        assert (
            api.post(f"/v1/requests/{r['id']}/votes", json={"decision": "approve"}).status_code
            == 409
        )
    assert not [c for c in site.calls() if c["arguments"].get("path") == "late.txt"]


# --- signoff mcp serve ---------------------------------------------------------------


def signoff_tools(site: Site) -> Client:
    return Client(
        StdioServerParameters(
            command=SIGNOFF[0], args=[*SIGNOFF[1:], "mcp", "serve"], env=site.env()
        )
    )


def test_an_agent_asks_first_waits_and_acts_on_the_grant(site: Site) -> None:
    action = {
        "type": "mcp.tool",
        "target": "mcp/files/write_file",
        "params": {"path": "plan.md", "content": "step 1"},
    }

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[str]]:
        messages: list[str] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            messages.append(message or "")

        async with signoff_tools(site) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            assert names == [
                "get_request",
                "list_my_requests",
                "request_approval",
                "wait_for_decision",
            ]
            asked = await client.call_tool(
                "request_approval", {**action, "reason": "planning a write"}
            )
            assert not asked.is_error, text(asked)
            first = asked.structured_content
            assert first is not None and first["status"] == "pending"
            waiting = asyncio.create_task(
                client.call_tool(
                    "wait_for_decision",
                    {"request_id": first["id"], "timeout_seconds": 30},
                    progress_callback=on_progress,
                )
            )
            while not messages:
                await asyncio.sleep(0.02)
            await vote(site, "bob", first["id"], "approve", "go")
            decided = (await waiting).structured_content
            mine = await client.call_tool("list_my_requests", {"status": "approved"})
            unknown = await client.call_tool("get_request", {"request_id": "nope-nope-nope"})
            assert unknown.is_error and "nope-nope-nope" in text(unknown)
            assert decided is not None and mine.structured_content is not None
            return first, decided, mine.structured_content, messages

    first, decided, mine, messages = run(scenario)
    assert first["awaiting"] == ["bob"] and first["grant"] is None
    assert first["url"] == f"{site.server.url}/requests/{first['id']}"
    assert "waiting for bob" in messages[0]
    assert decided["status"] == "approved" and decided["outcome"]
    assert first["id"] in [r["id"] for r in mine["requests"]]
    token = decided["grant"]["token"]
    # the grant is the agent's to redeem, for exactly what it asked
    with site.api("agent") as api:
        other = {**action, "params": {"path": "plan.md", "content": "rm -rf"}}
        assert (
            api.post("/v1/grants/redeem", json={"token": token, "action": other}).status_code == 403
        )
        ok = api.post("/v1/grants/redeem", json={"token": token, "action": action})
        assert ok.status_code == 200, ok.text


def test_a_wait_that_ends_undecided_says_so(site: Site) -> None:
    async def scenario() -> tuple[dict[str, Any], types.CallToolResult]:
        async with signoff_tools(site) as client:
            asked = await client.call_tool(
                "request_approval",
                {
                    "type": "mcp.tool",
                    "target": "mcp/files/write_file",
                    "params": {"path": "slow.md", "content": "x"},
                },
            )
            assert asked.structured_content is not None
            waited = await client.call_tool(
                "wait_for_decision",
                {"request_id": asked.structured_content["id"], "timeout_seconds": 0.5},
            )
            refused = await client.call_tool(
                "request_approval", {"type": "mcp.tool", "target": "mcp/files/delete_file"}
            )
            return waited.structured_content or {}, refused

    waited, refused = run(scenario)
    assert waited["status"] == "pending"
    assert waited["note"].startswith("still pending after 0.5s: do not act on it yet")
    assert not refused.is_error and refused.structured_content is not None
    assert refused.structured_content["status"] == "denied"
    assert "Agents never delete files" in refused.structured_content["outcome"]
