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
    tmp = tmp_path_factory.mktemp("mcp")
    app = build(
        make_settings(
            module_database_url,
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


def test_results_are_masked_before_the_agent_sees_them(site: Site) -> None:
    async def scenario() -> types.CallToolResult:
        async with Client(site.http_proxy) as client:
            return await client.call_tool("read_config", {"name": "billing"})

    result = run(scenario)
    assert not result.is_error, text(result)
    seen = json.dumps(result.model_dump(mode="json"))
    assert "hunter2" not in seen and "sk-live-123456" not in seen, seen
    assert result.structured_content is not None
    assert result.structured_content["password"] == "****"
    assert result.structured_content["service"] == "billing"
    assert "key ****" in result.structured_content["note"]


def test_a_remote_upstream_over_streamable_http(site: Site) -> None:
    port = free_port()
    log = site.tmp / "upstream-http.log"
    with open(log, "w") as out:
        upstream = subprocess.Popen(
            [sys.executable, str(UPSTREAM), "--http", str(port)],
            env=site.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_url(upstream, f"http://127.0.0.1:{port}/mcp", log)

        async def scenario() -> types.CallToolResult:
            params = StdioServerParameters(
                command=SIGNOFF[0],
                args=[
                    *SIGNOFF[1:],
                    "mcp",
                    "proxy",
                    "--name",
                    "files",
                    "--url",
                    f"http://127.0.0.1:{port}/mcp",
                ],
                env=site.env(),
            )
            async with Client(params) as client:
                denied = await client.call_tool("delete_file", {"path": "remote.txt"})
                assert denied.is_error
                return await client.call_tool("read_file", {"path": "remote.txt"})

        result = run(scenario)
    finally:
        stop([upstream])
    assert text(result) == "contents of remote.txt"
    remote = [c for c in site.calls() if c["arguments"].get("path") == "remote.txt"]
    assert remote == [{"tool": "read_file", "arguments": {"path": "remote.txt"}}]


def test_the_proxy_says_what_is_wrong_with_its_start(site: Site, tmp_path: Path) -> None:
    def proxy(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SIGNOFF, "mcp", "proxy", *args],
            env={**site.env(), **env},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )

    cases = [
        (["--", "true"], "--name: give the upstream a name"),
        (["--name", "files"], "give the upstream as -- COMMAND [ARG...] or as --url URL"),
        (["--name", "files", "--wait", "soon", "--", "true"], "--wait:"),
        (["--name", "files", "--listen", "nowhere", "--", "true"], "--listen: expected HOST:PORT"),
        (["--name", "files", "--mask-pattern", "(", "--", "true"], "--mask-pattern '(':"),
        (["--name", "files", "--listen", "0.0.0.0:8765", "--", "true"], "not a loopback"),
        (["--name", "files", "--listen", "[::]:8765", "--", "true"], "not a loopback"),
    ]
    for args, said in cases:
        done = proxy(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("error: ") and said in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    bad = proxy("--name", "files", "--", "true", SIGNOFF_TOKEN="not-a-token")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert site.server.url in bad.stderr, bad.stderr
    assert "not-a-token" not in bad.stderr


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


# --- a careless agent, a misbehaving upstream (tests/fixtures/mcp/hostile.py) ---------

HOSTILE = MCP / "hostile.py"


def hostile_proxy(site: Site, *options: str, url: str | None = None) -> StdioServerParameters:
    env = site.env()
    if url is not None:
        env["SIGNOFF_URL"] = url
    return StdioServerParameters(
        command=SIGNOFF[0],
        args=[
            *SIGNOFF[1:],
            *("mcp", "proxy", "--name", "hostile", *options),
            *("--", sys.executable, str(HOSTILE)),
        ],
        env=env,
    )


def hostile_calls(site: Site, tool: str) -> list[dict[str, Any]]:
    return [c for c in site.calls() if c["tool"] == tool]


def targets(site: Site) -> list[str]:
    with site.api("agent") as api:
        body = api.get("/v1/requests", params={"limit": 200}).json()
    return [r["action"]["target"] for r in body["items"]]


def test_arguments_json_cannot_carry_are_a_tool_error(site: Site) -> None:
    # The MCP SDK's parser takes NaN and Infinity, which JSON cannot carry on to Signoff:
    # the agent hears why, as a tool error (not a protocol error), and nothing is asked.
    params = hostile_proxy(site)
    proc = subprocess.Popen(
        [params.command, *params.args],
        env=params.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def send(line: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()

    def answer() -> dict[str, Any]:
        assert proc.stdout is not None
        found: dict[str, Any] = json.loads(proc.stdout.readline())
        return found

    before = len(targets(site))
    try:
        hello = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        }
        send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}))
        assert "result" in answer()
        send('{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        call = '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo",'
        call += '"arguments":%s}}'
        send(call % (2, '{"value": [1, NaN]}'))
        nan = answer()
        send(call % (3, '{"value": {"limit": Infinity}}'))
        infinite = answer()
    finally:
        proc.kill()
        proc.wait(10)
    for answered in (nan, infinite):
        assert answered["result"]["isError"] is True, answered
        said = answered["result"]["content"][0]["text"]
        assert "The arguments of the call to echo are not valid JSON" in said, said
        assert "NaN or infinite" in said and "nothing was asked" in said, said
    assert not hostile_calls(site, "echo") and len(targets(site)) == before


def test_once_the_upstream_died_no_call_spends_an_approval(site: Site) -> None:
    async def scenario() -> tuple[types.CallToolResult, types.CallToolResult]:
        async with Client(hostile_proxy(site)) as client:
            died = await client.call_tool("crash", {"path": "mid-call"})
            after = await client.call_tool("echo", {"value": "after the crash"})
        return died, after

    died, after = run(scenario)
    assert died.is_error and "Connection closed" in text(died), text(died)
    assert after.is_error, text(after)
    assert "The MCP server 'hostile' has stopped" in text(after)
    assert "nothing was asked" in text(after)
    # the crashing call was made (the upstream received it); the next was never asked
    assert hostile_calls(site, "crash") == [{"tool": "crash", "arguments": {"path": "mid-call"}}]
    assert "mcp/hostile/echo" not in targets(site)


def test_masking_reaches_resources_numbers_keys_and_upstream_errors(site: Site) -> None:
    async def scenario() -> list[types.CallToolResult]:
        options = ("--mask-key", "password", "--mask-pattern", r"sk-live-\d+")
        async with Client(hostile_proxy(site, *options, "--mask-pattern", r"\d{16}")) as c:
            return [
                await c.call_tool("secret_resource", {"path": "r"}),
                await c.call_tool("card", {"path": "c"}),
                await c.call_tool("fail", {"path": "f"}),
            ]

    results = run(scenario)
    seen = json.dumps([r.model_dump(mode="json") for r in results])
    for secret in ("hunter2", "sk-live-777", "4111111111111111", "sk-live-5", "sk-live-424242"):
        assert secret not in seen, (secret, seen)
    resource = results[0].content[0]
    assert isinstance(resource, types.EmbeddedResource)
    assert isinstance(resource.resource, types.TextResourceContents)
    assert json.loads(resource.resource.text) == {"password": "****", "note": "key ****"}
    assert json.loads(text(results[1])) == {"holder": "x", "number": "****", "****": "k"}
    assert results[2].is_error and "cannot open vault: token ****" in text(results[2])


def test_a_server_gone_while_a_call_waits_is_never_a_forwarded_call(site: Site) -> None:
    # a Signoff server of its own, stopped while the call waits for bob
    gone = LiveServer(site.server.app).start()
    path = "while-signoff-is-away"

    async def scenario() -> types.CallToolResult:
        params = hostile_proxy(site, "--wait", "2s", url=gone.url)
        async with Client(params) as client:
            call = asyncio.create_task(client.call_tool("hang", {"path": path}))
            r = await pending_request(site, "mcp/hostile/hang", params={"path": path})
            assert r["action"]["params"] == {"path": path}
            await asyncio.to_thread(gone.stop)
            return await call

    result = run(scenario)
    said = text(result)
    assert result.is_error
    assert "Nobody approved the call to hang within 2s, so it was not made" in said, said
    assert "could not be cancelled" in said and "was cancelled" not in said, said
    r = newest(site, "mcp/hostile/hang")
    assert r["status"] == "pending"  # as it was left: the proxy could not reach Signoff
    assert not hostile_calls(site, "hang")


def test_a_policy_that_wants_a_ticket_is_a_tool_error_the_model_can_read(site: Site) -> None:
    async def scenario() -> types.CallToolResult:
        async with Client(hostile_proxy(site)) as client:
            return await client.call_tool("ticketed", {"path": "t"})

    result = run(scenario)
    assert result.is_error
    assert "Signoff did not take the call to ticketed" in text(result)
    assert "requires a ticket matching the pattern ^OPS-\\d+$" in text(result)
    assert not hostile_calls(site, "ticketed")

    async def with_ticket() -> types.CallToolResult:
        async with Client(hostile_proxy(site, "--ticket", "OPS-7")) as client:
            return await client.call_tool("ticketed", {"path": "t"})

    ticketed = run(with_ticket)
    assert not ticketed.is_error, text(ticketed)
    assert hostile_calls(site, "ticketed") == [{"tool": "ticketed", "arguments": {"path": "t"}}]


def test_a_tool_name_a_target_glob_would_misread_is_refused(site: Site) -> None:
    # `mcp/hostile/*` allows the server's tools; `*` matches across `/`, so a tool named
    # with a slash could pass for another: refused before anything is asked
    async def scenario() -> types.CallToolResult:
        async with Client(hostile_proxy(site)) as client:
            listed = [t.name for t in (await client.list_tools()).tools]
            assert "read_x/../delete_all" in listed  # listed unchanged
            return await client.call_tool("read_x/../delete_all", {})

    result = run(scenario)
    assert result.is_error
    assert "is not one a policy can judge safely" in text(result), text(result)
    assert not hostile_calls(site, "delete_all")
    assert "mcp/hostile/read_x/../delete_all" not in targets(site)


def test_one_of_two_identical_waiting_calls_giving_up_leaves_the_other_waiting(
    site: Site,
) -> None:
    # identical calls fold into one request; the agent cancelling one of them must not
    # cancel the request the other still waits on
    arguments = {"path": "twins.md", "content": "same"}

    async def scenario() -> types.CallToolResult:
        async with Client(site.http_proxy) as client:
            first = asyncio.create_task(client.call_tool("write_file", arguments))
            r = await pending_request(site, "mcp/files/write_file", params=arguments)
            second = asyncio.create_task(client.call_tool("write_file", arguments))
            async with httpx.AsyncClient(base_url=site.server.url) as api:
                auth = {"Authorization": f"Bearer {site.tokens['agent']}"}
                while (await api.get(f"/v1/requests/{r['id']}", headers=auth)).json()[
                    "fold_count"
                ] < 1:
                    await asyncio.sleep(0.02)
                first.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await first
                # a cancelled request would be so within milliseconds: it stays pending
                deadline = time.monotonic() + 1.5
                while time.monotonic() < deadline:
                    now = (await api.get(f"/v1/requests/{r['id']}", headers=auth)).json()
                    assert now["status"] == "pending", now["outcome"]
                    await asyncio.sleep(0.1)
            await vote(site, "bob", r["id"], "approve")
            return await second

    result = run(scenario)
    assert not result.is_error, text(result)
    writes = [c for c in site.calls() if c["arguments"].get("path") == "twins.md"]
    assert writes == [{"tool": "write_file", "arguments": arguments}]


def test_two_identical_calls_share_one_approval_and_the_second_is_told_why(
    site: Site,
) -> None:
    arguments = {"path": "once.md", "content": "one use"}

    async def scenario() -> list[types.CallToolResult]:
        async with Client(site.http_proxy) as client:
            first = asyncio.create_task(client.call_tool("write_file", arguments))
            r = await pending_request(site, "mcp/files/write_file", params=arguments)
            second = asyncio.create_task(client.call_tool("write_file", arguments))
            while True:
                with site.api("agent") as api:
                    if api.get(f"/v1/requests/{r['id']}").json()["fold_count"] >= 1:
                        break
                await asyncio.sleep(0.02)
            await vote(site, "bob", r["id"], "approve")
            return [await first, await second]

    results = run(scenario)
    refused = [x for x in results if x.is_error]
    assert len(refused) == 1, [text(x) for x in results]
    said = text(refused[0])
    assert "An identical call waiting on the same request" in said, said
    assert "took the approval's last use" in said and "call again" in said
    writes = [c for c in site.calls() if c["arguments"].get("path") == "once.md"]
    assert writes == [{"tool": "write_file", "arguments": arguments}]


def test_the_proxys_token_never_reaches_the_upstream(site: Site) -> None:
    async def scenario() -> types.CallToolResult:
        async with Client(hostile_proxy(site)) as client:
            return await client.call_tool("environment", {"path": "env"})

    result = run(scenario)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    assert result.structured_content["signoff"] == []
    assert site.tokens["agent"] not in json.dumps(result.structured_content)
    r = newest(site, "mcp/hostile/environment")
    with site.api("alice") as api:
        stored = api.get(f"/v1/requests/{r['id']}").text
    assert site.tokens["agent"] not in stored
