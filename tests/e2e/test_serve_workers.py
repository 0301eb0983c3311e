"""`signoff serve --workers N`: N server processes on one port, as replicas of one
service, on PostgreSQL and on SQLite (whose writers take turns across the processes, in
groups, and whose changes reach every process's live streams through the audit head)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from signoff.bootstrap import build

from ..conftest import fresh_pg_database, make_settings
from .conftest import (
    SIGNOFF,
    auth,
    base_env,
    free_port,
    in_process_tokens,
    start_servers,
    stop,
    wait_ready,
)

WRITE = {"type": "sql.execute", "target": "pg/prod", "params": {"sql": "UPDATE t SET x = 1"}}


class Follower(threading.Thread):
    """A client following a request's live events until it is approved; started, and
    listening, once made."""

    def __init__(self, url: str, request_id: str, headers: dict[str, str]) -> None:
        super().__init__()
        self.url, self.path, self.headers = url, f"/v1/requests/{request_id}/events", headers
        self.events: list[str] = []
        self.listening = threading.Event()
        self.start()
        assert self.listening.wait(20)

    def run(self) -> None:
        with (
            httpx.Client(base_url=self.url, timeout=30) as s,
            connect_sse(s, "GET", self.path, headers=self.headers) as source,
        ):
            for sse in source.iter_sse():
                self.listening.set()
                self.events.append(sse.event)
                if sse.event == "request.approved":
                    return


@contextlib.contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "postgresql":
        with fresh_pg_database() as db:
            yield db
    else:
        db = f"sqlite:///{tmp_path}/signoff.db"
        build(make_settings(db, tmp_path)).close()  # migrated, as `serve` would
        yield db


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_processes_serve_one_port_as_one_service(tmp_path: Path, kind: str) -> None:
    with database(kind, tmp_path) as db:
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
                reader = Follower(url, r["id"], auth(tokens, "frank"))
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
                assert "request.approved" in reader.events

                # many asks at once, over both processes: every one stored, and the
                # audit chain still one unbroken line
                def ask(n: int) -> int:
                    with httpx.Client(base_url=url, timeout=30) as fresh:
                        body = {
                            "action": {**WRITE, "params": {"sql": f"UPDATE t SET x = {n}"}},
                            "reason": "r",
                            "ticket": "OPS-1",
                        }
                        return fresh.post(
                            "/v1/requests", json=body, headers=auth(tokens, "frank")
                        ).status_code

                with ThreadPoolExecutor(8) as pool:
                    assert list(pool.map(ask, range(60))) == [201] * 60
                listed = c.get(
                    "/v1/requests", params={"limit": 200}, headers=auth(tokens, "frank")
                ).json()
                assert len(listed["items"]) == 61
            verified = subprocess.run(
                [*SIGNOFF, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60
            )
            assert verified.returncode == 0, verified.stdout + verified.stderr
            pids = {
                int(line.split("[")[1].split("]")[0])
                for line in log.read_text().splitlines()
                if "Started server process [" in line
            }
            assert len(pids) == 2, log.read_text()
        finally:
            stop([proc])


def test_on_sqlite_a_vote_taken_by_one_process_reaches_a_stream_held_by_another(
    tmp_path: Path,
) -> None:
    with database("sqlite", tmp_path) as db:
        env = base_env(db, tmp_path)
        tokens = in_process_tokens(db, tmp_path, ("frank", "bob", "carol"))
        (a, url_a), (b, url_b) = start_servers(env, tmp_path, ("a", "b"))
        try:
            body = {"action": WRITE, "reason": "r", "ticket": "OPS-1"}
            r = httpx.post(
                f"{url_a}/v1/requests", json=body, headers=auth(tokens, "frank"), timeout=30
            ).json()
            reader = Follower(url_a, r["id"], auth(tokens, "frank"))
            for voter in ("bob", "carol"):  # both on process B
                vote = httpx.post(
                    f"{url_b}/v1/requests/{r['id']}/votes",
                    json={"decision": "approve"},
                    headers=auth(tokens, voter),
                    timeout=30,
                )
                assert vote.status_code == 200, vote.text
            reader.join(20)
            assert not reader.is_alive()
            assert reader.events.count("vote.cast") == 2
            assert reader.events[-1] == "request.approved"
        finally:
            stop([a, b])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the SO_REUSEPORT path")
def test_server_processes_that_cannot_start_stop_the_server_with_the_reason(
    tmp_path: Path,
) -> None:
    """A port held by a socket without SO_REUSEPORT: each process fails at its start. The
    server is not restarted for ever: after three quick failures it stops, saying so,
    with a non-zero status."""
    with database("sqlite", tmp_path) as db:
        env = base_env(db, tmp_path)
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        code = (
            "from signoff.entrypoints.api.processes import serve_processes; "
            f"raise SystemExit(serve_processes(1, '127.0.0.1', {port}))"
        )
        try:
            done = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
            )
        finally:
            blocker.close()
        assert done.returncode == 3
        assert "server processes keep ending at start" in done.stderr
        assert "Address already in use" in done.stderr
