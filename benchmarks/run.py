"""Signoff benchmarks: prints figures, each next to a baseline measured in the same run.

    uv run python benchmarks/run.py                       # SQLite (embedded default)
    uv run python benchmarks/run.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

(a) requests created per second through the HTTP API (real durable commits) versus a
    bare endpoint of the same framework, as a ratio;
(b) policy evaluation time per request with 10 and 500 policies;
(c) vote-to-waiting-client latency over server-sent events (p50/p99).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from signoff.adapters.directory_file import load_directory  # noqa: E402
from signoff.adapters.policy_files import load_policy_set  # noqa: E402
from signoff.config import EXAMPLES  # noqa: E402
from signoff.domain.actions import Action  # noqa: E402
from signoff.domain.policy import EvaluationInput  # noqa: E402

WRITE = {"type": "sql.execute", "target": "postgres/prod-main", "params": {"sql": "UPDATE t"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start")


class SignoffServer:
    def __init__(
        self,
        workdir: Path,
        database_url: str | None,
        tokens: dict[str, str] | None = None,
        workers: int = 1,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SIGNOFF_DATA_DIR": str(workdir),
            "SIGNOFF_PORT": str(self.port),
            "SIGNOFF_URL": self.url,
        }
        if database_url:
            self.env["SIGNOFF_DATABASE_URL"] = database_url
        self.log = open(workdir / f"server-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "signoff", "serve"]
            + (["--workers", str(workers)] if workers > 1 else []),
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_ready(self.url + "/healthz", self.proc)
        self.tokens = tokens or {u: self._token(u) for u in ("bob", "carol", "dave")}

    def _token(self, user: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "signoff", "token", "create", "--user", user],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def bare_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--app-dir",
            str(ROOT / "benchmarks"),
        ],
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/docs", proc)
    return proc, url


# What each kind of ask sends: a review stays pending; an allowed read is approved by
# policy with a grant (prod-sql-read in the example policies). Every body differs (a run
# prefix and a counter): identical pending asks would fold into one request.
BODIES = {
    "review": '{"action":{"type":"sql.execute","target":"postgres/prod-main",'
    '"params":{"sql":"UPDATE t SET n = NUM WHERE run = \'RUN\'"}},'
    '"reason":"benchmark","ticket":"OPS-1"}',
    "allowed": '{"action":{"type":"sql.execute","target":"postgres/prod-main",'
    '"params":{"sql":"SELECT NUM FROM t WHERE run = \'RUN\'"}},"reason":"benchmark"}',
}


def body_of(kind: str, run: str, n: int) -> str:
    return BODIES[kind].replace("RUN", run).replace("NUM", str(n))


def check(kind: str, resp: httpx.Response) -> None:
    if resp.status_code != 201:
        raise RuntimeError(f"expected 201 Created, got {resp.status_code}: {resp.text[:300]}")
    if kind == "allowed" and '"status":"approved"' not in resp.text:
        raise RuntimeError(f"expected an approved request: {resp.text[:300]}")


async def throughput(url: str, token: str, seconds: float, concurrency: int, kind: str) -> float:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    run = uuid.uuid4().hex[:12]
    counter = iter(range(10**9))
    done = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as c:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                resp = await c.post("/v1/requests", content=body_of(kind, run, next(counter)))
                check(kind, resp)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer TOKEN"
local n = 0
local template = BODY
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, (template:gsub("NNN", tostring(n))))
end
response = function(status, headers, body)
  if status ~= 201 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
"""


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def wrk_throughput(url: str, token: str, seconds: float, concurrency: int, kind: str) -> float:
    """The same load from wrk (C), when installed: the client is then not the bottleneck."""
    template = BODIES[kind].replace("RUN", uuid.uuid4().hex[:12]).replace("NUM", "NNN")
    script = WRK_SCRIPT.replace("TOKEN", token).replace("BODY", lua_string(template))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        done = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{int(seconds)}s",
                "-s",
                f.name,
                f"{url}/v1/requests",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(f.name)
    if "Non-2xx" in done.stdout or "unexpected status" in done.stderr:
        raise RuntimeError(f"wrk saw errors:\n{done.stdout}\n{done.stderr[:2000]}")
    return float(done.stdout.split("Requests/sec:")[1].split()[0])


def bench_throughput(
    server: SignoffServer, seconds: float, kinds: tuple[str, ...] = ("review", "allowed")
) -> dict[str, float]:
    """Requests created per second with 16 connections, next to the bare endpoint, three
    interleaved rounds each, medians: with wrk when installed, else with httpx (which
    then holds the bare endpoint back: its ratio flatters)."""
    proc, bare_url = bare_server()
    if shutil.which("wrk"):
        name, load = "wrk", wrk_throughput
    else:
        name = "httpx"

        def load(url: str, tok: str, seconds: float, concurrency: int, kind: str) -> float:
            return asyncio.run(throughput(url, tok, seconds, concurrency, kind))

    out: dict[str, float] = {}
    try:
        for kind in kinds:
            results: dict[str, list[float]] = {"signoff": [], "bare": []}
            for _ in range(3):  # interleave, so noise hits both alike
                results["bare"].append(load(bare_url, "x", seconds, 16, kind))
                results["signoff"].append(
                    load(server.url, server.tokens["dave"], seconds, 16, kind)
                )
            s, b = statistics.median(results["signoff"]), statistics.median(results["bare"])
            out.update({f"{kind}_rps": s, f"{kind}_bare_rps": b, f"{kind}_ratio": s / b})
        out["loader"] = name  # type: ignore[assignment]
    finally:
        proc.terminate()
        proc.wait(10)
    return out


def one_client(server: SignoffServer, trials: int) -> dict[str, float]:
    """One client asking one allowed request at a time: p50/p99 of the round trip, next
    to the bare endpoint's, interleaved."""
    proc, bare_url = bare_server()
    run = uuid.uuid4().hex[:12]
    headers = {"Content-Type": "application/json"}
    try:
        with (
            httpx.Client(
                base_url=server.url,
                headers={**headers, "Authorization": f"Bearer {server.tokens['dave']}"},
            ) as c,
            httpx.Client(base_url=bare_url, headers=headers) as bare,
        ):
            ours, theirs = [], []
            for n in range(trials + 20):
                body = body_of("allowed", run, n)
                t0 = time.perf_counter()
                bare.post("/v1/requests", content=body)
                t1 = time.perf_counter()
                check("allowed", c.post("/v1/requests", content=body))
                t2 = time.perf_counter()
                if n >= 20:  # warmed up
                    theirs.append((t1 - t0) * 1000)
                    ours.append((t2 - t1) * 1000)
    finally:
        proc.terminate()
        proc.wait(10)
    return {
        "p50_ms": statistics.median(ours),
        "p99_ms": pct(ours, 0.99),
        "bare_p50_ms": statistics.median(theirs),
        "bare_p99_ms": pct(theirs, 0.99),
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def synthetic_policies(folder: Path, n: int) -> None:
    lines = ["default: {outcome: deny}", "policies:"]
    for i in range(n):
        lines += [
            f"  - name: p{i}",
            "    match:",
            f"      type: t{i % 50}.run",
            f'      target: "env-{i % 7}/*"',
            f"      condition: 'size(action.params) > {i % 5} && requester.name != \"x{i}\"'",
            "    outcome: allow",
        ]
    (folder / "p.yaml").write_text("\n".join(lines) + "\n")


def bench_policy(n: int, rounds: int = 20000) -> dict[str, float]:
    directory = load_directory(EXAMPLES / "users.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_policies(Path(tmp), n)
        ps = load_policy_set(tmp, directory)
    user = directory.user("bob")
    now = datetime.now(UTC)
    # a request that meets every candidate of its type; the last one decides
    inputs = [
        EvaluationInput(
            Action(f"t{k}.run", "env-6/x", {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}), user, now
        )
        for k in range(min(n, 50))
    ]
    samples = []
    for r in range(rounds):
        inp = inputs[r % len(inputs)]
        t0 = time.perf_counter_ns()
        ps.evaluate(inp)
        samples.append(time.perf_counter_ns() - t0)
    base = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        inputs[0].cel_context(ps.cel_functions)
        base.append(time.perf_counter_ns() - t0)
    med = statistics.median(samples) / 1000
    return {
        "policies": n,
        "median_us": med,
        "p99_us": sorted(samples)[int(rounds * 0.99)] / 1000,
        "baseline_context_us": statistics.median(base) / 1000,
    }


def bench_sse(server: SignoffServer, trials: int, vote_url: str | None = None) -> dict[str, float]:
    """Vote through ``vote_url`` (another replica) or the same server; the waiting
    client is always on ``server``."""
    frank = {"Authorization": f"Bearer {server.tokens['dave']}"}
    bob = {"Authorization": f"Bearer {server.tokens['bob']}"}
    voter_base = vote_url or server.url
    # each call asks its own statements: a repeat of an earlier call's, still pending
    # (one vote of two), would fold into that request and replay its old vote at once
    run = uuid.uuid4().hex[:12]
    latencies, rtts = [], []
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for trial in range(trials + 5):
            rid = c.post(
                "/v1/requests",
                headers=frank,
                json={
                    "action": {
                        **WRITE,
                        "params": {"sql": f"UPDATE t SET trial = {trial} WHERE run = '{run}'"},
                    },
                    "reason": "bench",
                    "ticket": "OPS-1",
                },
            ).json()["id"]
            got = threading.Event()
            ready = threading.Event()
            arrived: list[float] = []

            def listen(
                rid: str = rid,
                got: threading.Event = got,
                ready: threading.Event = ready,
                arrived: list[float] = arrived,
            ) -> None:
                with (
                    httpx.Client(base_url=server.url, timeout=30) as lc,
                    connect_sse(lc, "GET", f"/v1/requests/{rid}/events", headers=frank) as src,
                ):
                    for sse in src.iter_sse():
                        if sse.event == "request.submitted":
                            ready.set()
                        if sse.event == "vote.cast":
                            arrived.append(time.perf_counter())
                            got.set()
                            return

            th = threading.Thread(target=listen, daemon=True)
            th.start()
            ready.wait(10)
            t0 = time.perf_counter()
            vote = c.post(
                f"{voter_base}/v1/requests/{rid}/votes", headers=bob, json={"decision": "approve"}
            )
            if vote.status_code != 200:
                raise RuntimeError(f"the vote failed: {vote.status_code} {vote.text[:300]}")
            got.wait(10)
            if trial >= 5:  # the first few warm up connections and code paths
                latencies.append((arrived[0] - t0) * 1000)
            th.join(5)
            t1 = time.perf_counter()
            c.get("/healthz")
            rtts.append((time.perf_counter() - t1) * 1000)
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "healthz_rtt_p50_ms": statistics.median(rtts),
    }


def ensure_database(url: str) -> None:
    """The benchmark's PostgreSQL database, made if it is not there (never `test`)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.split("+psycopg", 1)[0] + url.split("+psycopg", 1)[1].rsplit("/", 1)[0]
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def scaling(
    server: SignoffServer, tmp: Path, args: Any, one: dict[str, float], counts: list[int]
) -> dict[str, float]:
    """Throughput with N server processes (`serve --workers N`) on the same database,
    next to one process's, measured the same way (wrk or httpx, 16 connections)."""
    out: dict[str, float] = {}
    load = wrk_throughput if shutil.which("wrk") else None
    for n in counts:
        many = SignoffServer(tmp, args.database_url, tokens=server.tokens, workers=n)
        try:
            for kind in ("review", "allowed"):
                rounds = []
                for _ in range(3):
                    if load is not None:
                        rounds.append(load(many.url, server.tokens["dave"], args.seconds, 16, kind))
                    else:
                        rounds.append(
                            asyncio.run(
                                throughput(many.url, server.tokens["dave"], args.seconds, 16, kind)
                            )
                        )
                rps = statistics.median(rounds)
                out[f"{kind}_{n}_rps"] = rps
                out[f"{kind}_{n}_x"] = rps / one[f"{kind}_rps"]
                print(
                    f"(a'') {kind}, {n} server processes: {rps:.0f}/s, "
                    f"{rps / one[f'{kind}_rps']:.2f}x one process"
                )
        finally:
            many.stop()
    return out


HISTORY_COLUMNS = (
    "id, status, requester, action_type, action_target, action_params, action_digest, "
    "reason, context, policy_name, policy_set_digest, stages, current_stage, "
    "grant_ttl_seconds, grant_uses, created_at, version, on_timeout, escalation_level, "
    "reminders_sent"
)


def fill_history(database_url: str, count: int) -> None:
    """``count`` earlier requests by the benchmark's requester (dave) with the action type
    and target the benchmark asks for, each its own statement (digest), every other one
    still pending (what the fold check looks through), the rest approved; inserted in
    bulk by the database."""
    import sqlalchemy as sa

    row = (
        "CASE WHEN {n} % 2 = 0 THEN 'pending' ELSE 'approved' END, 'dave', 'sql.execute', "
        "'postgres/prod-main', '{{}}', 'hist-' || {n}, 'history', '{{}}', 'prod-sql-write', "
        "'p', '[]', 0, 900, 1, {now}, 0, 'timed_out', 0, 0"
    )
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                sql = (
                    f"INSERT INTO requests ({HISTORY_COLUMNS}) SELECT 'hist-' || g, "
                    + row.format(n="g", now="now() - interval '1 day'")
                    + " FROM generate_series(1, :n) AS g"
                )
            else:
                sql = (
                    "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) "
                    f"INSERT INTO requests ({HISTORY_COLUMNS}) SELECT 'hist-' || x, "
                    + row.format(n="x", now="'2026-11-22 08:00:00.000000'")
                    + " FROM g"
                )
            conn.execute(sa.text(sql), {"n": count})
            conn.execute(sa.text("ANALYZE requests"))
    finally:
        engine.dispose()


def history(args: Any, count: int) -> dict[str, float]:
    """Throughput on a store holding ``count`` earlier requests of the same requester,
    next to a fresh store's: two servers, their rounds alternated (wrk or httpx, 16
    connections, three rounds each, medians)."""
    import sqlalchemy as sa

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as fresh_dir, tempfile.TemporaryDirectory() as full_dir:
        urls: dict[str, str | None] = {"fresh": args.database_url, "full": None}
        if args.database_url:
            urls["full"] = args.database_url + "_history"
            for url in (args.database_url, urls["full"]):
                ensure_database(url)
                engine = sa.create_engine(url)
                with engine.begin() as conn:
                    conn.execute(
                        sa.text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
                    )
                engine.dispose()
        servers = {
            "fresh": SignoffServer(Path(fresh_dir), urls["fresh"]),
            "full": SignoffServer(Path(full_dir), urls["full"]),
        }
        try:
            fill_history(urls["full"] or f"sqlite:///{Path(full_dir) / 'signoff.db'}", count)
            for kind in ("review", "allowed"):
                rounds: dict[str, list[float]] = {"fresh": [], "full": []}
                for _ in range(3):  # interleaved, so noise hits both alike
                    for name, s in servers.items():
                        if shutil.which("wrk"):
                            r = wrk_throughput(s.url, s.tokens["dave"], args.seconds, 16, kind)
                        else:
                            r = asyncio.run(
                                throughput(s.url, s.tokens["dave"], args.seconds, 16, kind)
                            )
                        rounds[name].append(r)
                fresh, full = statistics.median(rounds["fresh"]), statistics.median(rounds["full"])
                out.update({f"{kind}_fresh_rps": fresh, f"{kind}_full_rps": full})
                out[f"{kind}_ratio"] = full / fresh
                print(
                    f"(d) {kind}, with {count:,} earlier requests of the same requester: "
                    f"{full:.0f}/s vs {fresh:.0f}/s on a fresh store: ratio {full / fresh:.2f}"
                )
        finally:
            for s in servers.values():
                s.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument(
        "--workers",
        default="1",
        help="e.g. 1,2: the throughput again with `serve --workers N`",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=100_000,
        help="(d): earlier requests of the same requester on the second store (0: skip)",
    )
    args = parser.parse_args()
    os.chdir(ROOT / "benchmarks")
    results: dict[str, Any] = {"database": "postgresql" if args.database_url else "sqlite"}
    for n in (10, 500):
        r = bench_policy(n)
        results[f"policy_eval_{n}"] = r
        print(
            f"(b) policy evaluation, {n:>3} policies: median {r['median_us']:.1f} us, "
            f"p99 {r['p99_us']:.1f} us (baseline: building one CEL context "
            f"{r['baseline_context_us']:.1f} us; "
            f"ratio {r['median_us'] / r['baseline_context_us']:.2f})"
        )
    with tempfile.TemporaryDirectory() as tmp:
        if args.database_url:
            import sqlalchemy as sa

            ensure_database(args.database_url)
            engine = sa.create_engine(args.database_url)
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        server = SignoffServer(Path(tmp), args.database_url)
        try:
            t = bench_throughput(server, args.seconds)
            results["throughput"] = t
            for kind in ("review", "allowed"):
                print(
                    f"(a) requests created, {kind} ({t['loader']}, 16 connections): "
                    f"{t[f'{kind}_rps']:.0f}/s with durable commits vs "
                    f"{t[f'{kind}_bare_rps']:.0f}/s bare endpoint: ratio {t[f'{kind}_ratio']:.2f}"
                )
            counts = [int(n) for n in args.workers.split(",") if int(n) > 1]
            if counts:
                results["processes"] = scaling(server, Path(tmp), args, t, counts)
            o = one_client(server, args.trials)
            results["one_client"] = o
            print(
                f"(a') one client, allowed request -> grant: p50 {o['p50_ms']:.2f} ms, p99 "
                f"{o['p99_ms']:.2f} ms (bare endpoint p50 {o['bare_p50_ms']:.2f} ms, p99 "
                f"{o['bare_p99_ms']:.2f} ms)"
            )
            s = bench_sse(server, args.trials)
            results["sse"] = s
            print(
                f"(c) vote to waiting SSE client: p50 {s['p50_ms']:.1f} ms, p99 "
                f"{s['p99_ms']:.1f} ms (baseline /healthz round trip p50 "
                f"{s['healthz_rtt_p50_ms']:.1f} ms)"
            )
            if args.database_url:
                second = SignoffServer(Path(tmp), args.database_url, tokens=server.tokens)
                try:
                    x = bench_sse(server, args.trials, vote_url=second.url)
                finally:
                    second.stop()
                results["sse_cross_replica"] = x
                print(
                    f"(c') vote on replica B to SSE client on replica A: p50 {x['p50_ms']:.1f} "
                    f"ms, p99 {x['p99_ms']:.1f} ms (baseline /healthz round trip p50 "
                    f"{x['healthz_rtt_p50_ms']:.1f} ms)"
                )
        finally:
            server.stop()
    if args.history:
        results["history"] = history(args, args.history)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
