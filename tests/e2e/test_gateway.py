"""The gateway as users meet it: `signoff run` in one command, and execute calls raced
through two server processes on one PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import httpx
import psycopg
import sqlalchemy as sa

from signoff.adapters.db import tables as t

from ..conftest import FIXTURES, _reset_postgres
from ..integration.test_gateway import targets_file
from .test_replicas import SIGNOFF, auth, base_env, in_process_tokens, start_server


def gateway_env(database_url: str, tmp_path: Path, dsn: str) -> dict[str, str]:
    return {
        **base_env(database_url, tmp_path),
        "SIGNOFF_POLICIES_DIR": str(FIXTURES / "gateway"),
        "SIGNOFF_TARGETS_FILE": str(targets_file(tmp_path)),
        "SCRATCH_DSN": dsn,
        "RESTART_TOKEN": "x",
        "DEPLOY_TOKEN": "y",
    }


def test_signoff_run_asks_waits_executes_and_prints(
    database_url: str, tmp_path: Path, target_db: str
) -> None:
    env = gateway_env(database_url, tmp_path, target_db)
    server, url = start_server(env, tmp_path, "server")
    try:
        env["SIGNOFF_URL"] = url
        tokens = in_process_tokens(database_url, tmp_path, ("dave", "bob"))
        dave = {**env, "SIGNOFF_TOKEN": tokens["dave"]}
        bob = {**env, "SIGNOFF_TOKEN": tokens["bob"]}
        # a read passes by policy and prints a table at once
        read = subprocess.run(
            [*SIGNOFF, "run", "--type", "sql.execute", "--target", "pg/scratch",
             "--param", "sql=SELECT id, balance FROM accounts WHERE id < 3 ORDER BY id"],
            env=dave, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert read.returncode == 0, read.stderr
        assert "id" in read.stdout and "balance" in read.stdout and "100" in read.stdout
        assert "executed: 2 row(s)" in read.stderr
        # a write waits for a DBA, then runs
        run = subprocess.Popen(
            [*SIGNOFF, "run", "--type", "sql.execute", "--target", "pg/scratch",
             "--param", "sql=UPDATE accounts SET balance = 7 WHERE id = 5", "--reason", "fix"],
            env=dave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        pending = []
        for _ in range(100):
            pending = httpx.get(
                f"{url}/v1/requests", params={"status": "pending"}, headers={
                    "Authorization": f"Bearer {bob['SIGNOFF_TOKEN']}"}
            ).json()["items"]  # fmt: skip
            if pending:
                break
            time.sleep(0.1)
        approve = subprocess.run(
            [*SIGNOFF, "approve", pending[0]["id"]], env=bob, capture_output=True, text=True
        )
        assert approve.returncode == 0, approve.stderr
        _, errors = run.communicate(timeout=60)
        assert run.returncode == 0, errors
        assert "executed: UPDATE 1" in errors
        with psycopg.connect(target_db) as conn:
            assert conn.execute("SELECT balance FROM accounts WHERE id = 5").fetchone() == (7,)
        # a denied run exits 1 and runs nothing
        denied = subprocess.run(
            [*SIGNOFF, "run", "--type", "sql.execute", "--target", "pg/scratch",
             "--param", "sql=DELETE FROM accounts"],
            env=dave, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert denied.returncode == 1 and "is denied" in denied.stderr
    finally:
        server.terminate()
        server.wait(10)


def test_fifty_executes_through_two_replicas_run_the_statement_once(
    pg_database: str, tmp_path: Path, target_db: str
) -> None:
    _reset_postgres(pg_database)
    env = gateway_env(pg_database, tmp_path, target_db)
    procs = []
    try:
        a, url_a = start_server(env, tmp_path, "a")
        procs.append(a)
        b, url_b = start_server(env, tmp_path, "b")
        procs.append(b)
        tokens = in_process_tokens(pg_database, tmp_path, ("dave", "bob"))
        action = {
            "type": "sql.execute",
            "target": "pg/scratch",
            "params": {"sql": "UPDATE accounts SET balance = balance + 1 WHERE id = 6"},
        }
        r = httpx.post(
            f"{url_a}/v1/requests", json={"action": action}, headers=auth(tokens, "dave")
        ).json()
        voted = httpx.post(
            f"{url_b}/v1/requests/{r['id']}/votes",
            json={"decision": "approve"},
            headers=auth(tokens, "bob"),
        )
        assert voted.json()["status"] == "approved"

        async def storm() -> list[int]:
            async with httpx.AsyncClient(timeout=60, headers=auth(tokens, "dave")) as c:
                calls = [
                    c.post(f"{url_a if i % 2 else url_b}/v1/requests/{r['id']}/execute")
                    for i in range(50)
                ]
                return [x.status_code for x in await asyncio.gather(*calls)]

        codes = asyncio.run(storm())
        assert codes.count(200) == 1 and codes.count(403) == 49
        with psycopg.connect(target_db) as conn:
            assert conn.execute("SELECT balance FROM accounts WHERE id = 6").fetchone() == (101,)
        engine = sa.create_engine(pg_database)
        with engine.connect() as conn:
            runs = conn.execute(
                sa.select(sa.func.count()).where(t.executions.c.request_id == r["id"])
            ).scalar_one()
        engine.dispose()
        assert runs == 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
