"""The MCP proxy's cost on an allowed tool call, next to a direct call in the same run.

    uv run python benchmarks/mcp_proxy.py [--database-url URL] [--trials 300] [--seconds 5]

A `signoff serve` with one policy (agents' calls to mcp/bench/* are allowed), an
upstream MCP server built with the SDK (one `echo` tool), and two clients of the SDK
kept open side by side: one straight to the upstream (both over stdio), one through
`signoff mcp proxy --name bench`. Calls alternate between the two so both see the
same noise.

(a) latency of one call, p50 and p99, direct and through the proxy, and what the proxy
    adds at p50 (for an allowed call: the request to Signoff, the grant redeemed, then
    the call forwarded);
(b) allowed calls per second one proxy sustains with 8 calls in flight, next to the
    upstream alone with the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters
from run import SignoffServer

HERE = Path(__file__).resolve().parent
UPSTREAM = '''
from mcp.server import MCPServer

server = MCPServer("bench")


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return text


server.run()
'''
POLICY = """
default: {outcome: deny}
policies:
  - name: bench-agent-calls
    match: {type: mcp.tool, target: "mcp/bench/*"}
    outcome: allow
    grant: {ttl: 5m, uses: 1}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(client: Client, n: int) -> float:
    start = time.perf_counter()
    result = await client.call_tool("echo", {"text": f"call {n}"})
    elapsed = (time.perf_counter() - start) * 1000
    if result.is_error:
        raise RuntimeError(f"the call failed: {result.content}")
    return elapsed


async def rate(client: Client, seconds: float, in_flight: int) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await timed(client, next(counter))
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return done / (time.perf_counter() - started)


async def measure(upstream: Path, env: dict[str, str], trials: int, seconds: float) -> None:
    direct = Client(StdioServerParameters(command=sys.executable, args=[str(upstream)]))
    proxied = Client(
        StdioServerParameters(
            command=sys.executable,
            args=[
                "-m",
                "signoff",
                "mcp",
                "proxy",
                "--name",
                "bench",
                "--",
                sys.executable,
                str(upstream),
            ],
            env=env,
        )
    )
    async with direct as d, proxied as p:
        for n in range(20):  # warm both paths
            await timed(d, n)
            await timed(p, n)
        base, via = [], []
        for n in range(trials):
            base.append(await timed(d, n))
            via.append(await timed(p, n))
        b50, v50 = statistics.median(base), statistics.median(via)
        print(
            f"(a) one call: direct p50 {b50:.2f} ms p99 {pct(base, 0.99):.2f} ms | through the "
            f"proxy p50 {v50:.2f} ms p99 {pct(via, 0.99):.2f} ms | added at p50 "
            f"{v50 - b50:.2f} ms, at p99 {pct(via, 0.99) - pct(base, 0.99):.2f} ms "
            f"(target: under 5 ms at p50 on SQLite)"
        )
        alone = await rate(d, seconds, 8)
        gated = await rate(p, seconds, 8)
        print(
            f"(b) allowed calls/s with 8 in flight: through the proxy {gated:.0f} | upstream "
            f"alone {alone:.0f} | ratio {gated / alone:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "policies").mkdir()
        (work / "policies" / "bench.yaml").write_text(POLICY)
        upstream = work / "upstream.py"
        upstream.write_text(UPSTREAM)
        os.environ["SIGNOFF_POLICIES_DIR"] = str(work / "policies")
        server = SignoffServer(work, args.database_url)
        try:
            print(f"store: {'postgresql' if args.database_url else 'sqlite'}")
            env = {
                "SIGNOFF_URL": server.url,
                "SIGNOFF_TOKEN": server.tokens["dave"],
                "PATH": os.environ.get("PATH", ""),
            }
            asyncio.run(measure(upstream, env, args.trials, args.seconds))
        finally:
            server.stop()


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
