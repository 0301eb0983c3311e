"""The gateway (issue 5): the cost of having Signoff run a statement, against running the
same statement directly with psycopg, measured in the same run.

    uv run python benchmarks/gateway.py [--database-url postgresql+psycopg://...]
        [--target-dsn postgresql://postgres@127.0.0.1:5432/test] [--trials 100]

A `signoff serve` process (SQLite by default, or --database-url) with a policy that
allows reads outright (read-only grants) and a `postgres` target on a scratch database
with a 10,000-row table. For each of two statements, a trivial `SELECT 1` and a read of
the 10,000 rows:

- baseline: psycopg connects, sets the same statement timeout, runs the statement,
  fetches every row and commits (what a person at a terminal does, connection included);
- through Signoff: POST /v1/requests (allowed by policy, a grant issued) then
  POST /v1/requests/{id}/execute (redeem one use, connect, run READ ONLY, mask, store
  the result and its digest, audit), over HTTP on loopback.

Printed: p50 and p99 of each, and the p50 ratios (Signoff / direct) for the execute
call alone (the gateway's cost) and for request + execute (with the approval step);
last, the two figures issue 16 sets a target for: the execute call's ratio for
`SELECT 1` and for the 10,000-row read (target: at most 2 each).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import SignoffServer

POLICY = """
policies:
  - name: bench-reads
    match: {type: sql.execute, target: "pg/bench", condition: 'action.sql.kind == "read"'}
    outcome: allow
    grant: {ttl: 5m, uses: 1, read_only: true}
default:
  outcome: deny
"""
TARGETS = """
targets:
  - name: pg/bench
    executor: postgres
    dsn: {env: BENCH_TARGET_DSN}
    statement_timeout: 30s
    max_rows: 20000
"""
STATEMENTS = {
    "SELECT 1": "SELECT 1",
    "10,000-row read": "SELECT id, name, n FROM big ORDER BY id",
}


def direct(dsn: str, sql: str) -> float:
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        conn.read_only = True
        with conn.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = 30000")
            cur.execute(sql.encode())
            rows = cur.fetchall()
        conn.commit()
    assert rows
    return (time.perf_counter() - t0) * 1000


def through(c: httpx.Client, sql: str) -> tuple[float, float]:
    """(request + execute, execute alone), in ms: until the answer is received. Checking
    it (decoding its JSON: about 2 ms for the 10,000 rows, in the client) is not timed,
    as the direct round trip's rows are not encoded or decoded either."""
    t0 = time.perf_counter()
    r = c.post(
        "/v1/requests", json={"action": {"type": "sql.execute", "target": "pg/bench",
                                         "params": {"sql": sql}}}
    )  # fmt: skip
    asked = time.perf_counter() - t0
    assert r.status_code == 201 and r.json()["status"] == "approved", r.text
    t1 = time.perf_counter()
    x = c.post(f"/v1/requests/{r.json()['id']}/execute")
    executed = time.perf_counter() - t1
    assert x.status_code == 200 and x.json()["ok"], x.text
    return (asked + executed) * 1000, executed * 1000


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--target-admin", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    name = f"signoff_bench_target_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.target_admin, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    dsn = args.target_admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE big (id int primary key, name text, n int);"
                "INSERT INTO big SELECT i, md5(i::text), i % 97 FROM generate_series(1, 10000) i"
            )
        if args.database_url:
            import sqlalchemy as sa

            engine = sa.create_engine(args.database_url)
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "policies").mkdir()
            (Path(tmp) / "policies" / "bench.yaml").write_text(POLICY)
            (Path(tmp) / "targets.yaml").write_text(TARGETS)
            os.environ.update(
                {
                    "SIGNOFF_POLICIES_DIR": str(Path(tmp) / "policies"),
                    "SIGNOFF_TARGETS_FILE": str(Path(tmp) / "targets.yaml"),
                    "BENCH_TARGET_DSN": dsn,
                }
            )
            server = SignoffServer(Path(tmp), args.database_url)
            headers = {"Authorization": f"Bearer {server.tokens['dave']}"}
            db = "postgresql" if args.database_url else "sqlite"
            ratios: dict[str, float] = {}
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
                for label, sql in STATEMENTS.items():
                    for _ in range(5):  # warm up both paths
                        direct(dsn, sql)
                        through(c, sql)
                    base, via, ex = [], [], []
                    for _ in range(args.trials):  # interleaved: both see the same noise
                        base.append(direct(dsn, sql))
                        both, alone = through(c, sql)
                        via.append(both)
                        ex.append(alone)
                    b50, v50, e50 = (statistics.median(x) for x in (base, via, ex))
                    print(
                        f"{db} store, {label}: direct psycopg p50 {b50:.2f} ms p99 "
                        f"{pct(base, 0.99):.2f} ms | execute alone p50 {e50:.2f} ms p99 "
                        f"{pct(ex, 0.99):.2f} ms, ratio {e50 / b50:.2f} | request + execute "
                        f"p50 {v50:.2f} ms p99 {pct(via, 0.99):.2f} ms, ratio {v50 / b50:.2f}"
                    )
                    ratios[label] = e50 / b50
            server.stop()
            print(f"\nexecute through Signoff / direct psycopg, p50, {db} store (target <= 2):")
            for label, ratio in ratios.items():
                print(f"  {label:16s} {ratio:.2f}x  {'met' if ratio <= 2 else 'NOT met'}")
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
