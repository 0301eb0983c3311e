"""`signoff serve --workers N`: N server processes on one port, as replicas of one
service on PostgreSQL; refused on SQLite, which has one writer at a time."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import httpx
from httpx_sse import connect_sse

from ..conftest import fresh_pg_database
from .conftest import SIGNOFF, auth, base_env, free_port, in_process_tokens, stop, wait_ready

WRITE = {"type": "sql.execute", "target": "pg/prod", "params": {"sql": "UPDATE t SET x = 1"}}


def test_two_processes_serve_one_port_as_one_service(tmp_path: Path) -> None:
    with fresh_pg_database() as db:
        env = base_env(db, tmp_path)
        tokens = in_process_tokens(db, tmp_path, ("frank", "bob", "carol"))
        port = free_port()
        log = tmp_path / "serve.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [*SIGNOFF, "serve", "--workers", "2", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(proc, url, log)
            with httpx.Client(base_url=url, timeout=30) as c:
                body = {"action": WRITE, "reason": "r", "ticket": "OPS-1"}
                r = c.post("/v1/requests", json=body, headers=auth(tokens, "frank")).json()
                events: list[str] = []
                listening = threading.Event()

                def follow() -> None:
                    with (
                        httpx.Client(base_url=url, timeout=30) as s,
                        connect_sse(
                            s, "GET", f"/v1/requests/{r['id']}/events",
                            headers=auth(tokens, "frank"),
                        ) as source,
                    ):  # fmt: skip
                        for sse in source.iter_sse():
                            listening.set()
                            events.append(sse.event)
                            if sse.event == "request.approved":
                                return

                reader = threading.Thread(target=follow)
                reader.start()
                assert listening.wait(20)
                # many connections: uvicorn spreads them over both processes, and every
                # vote reaches the one stream, whichever process took it
                for voter in ("bob", "carol"):
                    with httpx.Client(base_url=url, timeout=30) as fresh:
                        vote = fresh.post(
                            f"/v1/requests/{r['id']}/votes",
                            json={"decision": "approve"},
                            headers=auth(tokens, voter),
                        )
                        assert vote.status_code == 200, vote.text
                reader.join(30)
                assert not reader.is_alive()
                assert "request.approved" in events
            pids = {
                int(line.split("[")[1].split("]")[0])
                for line in log.read_text().splitlines()
                if "Started server process [" in line
            }
            assert len(pids) == 2, log.read_text()
        finally:
            stop([proc])


def test_more_processes_on_sqlite_are_refused_with_the_reason(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/s.db", tmp_path)
    done = subprocess.run(
        [*SIGNOFF, "serve", "--workers", "2", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: --workers: SQLite has one writer at a time")
    assert "Traceback" not in done.stderr
