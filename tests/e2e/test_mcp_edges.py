"""`signoff mcp proxy` at its edges, as a careless agent or a misbehaving upstream
would take it: its start refused with the reason, a remote upstream, masking, arguments
JSON cannot carry, an upstream that dies or hangs, a Signoff server gone while a call
waits, tickets, odd tool names, identical calls, the token kept from the upstream.

The proxy's behaviour here does not depend on the store, so these run on SQLite;
tests/e2e/test_mcp.py runs the core paths on both databases."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from ..conftest import FIXTURES, LiveServer
from .conftest import SIGNOFF, free_port, stop
from .test_mcp import (
    UPSTREAM,
    Site,
    newest,
    open_site,
    pending_request,
    run,
    stdio_proxy,
    text,
    vote,
    wait_for_url,
)

MCP = FIXTURES / "mcp"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("mcp-edges")
    shutil.copy(sqlite_template, tmp / "signoff.db")
    with open_site(f"sqlite:///{tmp / 'signoff.db'}", tmp) as opened:
        yield opened


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
    # each a process of its own, started side by side (they share nothing)
    with ThreadPoolExecutor(len(cases) + 1) as pool:
        runs = [pool.submit(proxy, *args) for args, _ in cases]
        token_run = pool.submit(proxy, "--name", "files", "--", "true", SIGNOFF_TOKEN="not-a-token")
        results = [r.result() for r in runs]
        bad = token_run.result()
    for (args, said), done in zip(cases, results, strict=True):
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("error: ") and said in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert site.server.url in bad.stderr, bad.stderr
    assert "not-a-token" not in bad.stderr


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


def test_one_of_two_identical_calls_reaching_its_deadline_leaves_the_other_waiting(
    site: Site,
) -> None:
    # the same rule for a deadline: the first call's --wait ends, the request stays open
    # for the second, which then runs once approved
    arguments = {"path": "late-twin.md", "content": "same"}
    seen: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        seen.append(done)

    async def scenario() -> tuple[types.CallToolResult, types.CallToolResult]:
        async with stdio_proxy(site, "--wait", "4s", "--progress-every", "1s") as client:
            first = asyncio.create_task(
                client.call_tool("write_file", arguments, progress_callback=on_progress)
            )
            r = await pending_request(site, "mcp/files/write_file", params=arguments)
            while not seen or seen[-1] < 2:  # the second's deadline comes 2 s later
                await asyncio.sleep(0.05)
            second = asyncio.create_task(client.call_tool("write_file", arguments))
            timed_out = await first
            await vote(site, "bob", r["id"], "approve")
            return timed_out, await second

    timed_out, ran = run(scenario)
    assert timed_out.is_error
    assert "stays open for an identical call still waiting on it" in text(timed_out)
    assert not ran.is_error, text(ran)
    writes = [c for c in site.calls() if c["arguments"].get("path") == "late-twin.md"]
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
