"""The end-to-end helpers: `signoff serve`, `signoff worker` and the CLI as processes.

A cold `signoff serve` takes seconds to be ready, so a module starts its servers once
(module-scoped fixtures) on a database of its own, and each test works on requests of
its own. Tests that need fresh processes (a killed worker) start them themselves."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from signoff.bootstrap import build
from signoff.services.auth import create_token

from ..conftest import FIXTURES, fresh_pg_database, make_settings

SIGNOFF = [sys.executable, "-m", "signoff"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "SIGNOFF_DATABASE_URL": database_url,
        "SIGNOFF_DATA_DIR": str(tmp_path),
        "SIGNOFF_POLICIES_DIR": str(FIXTURES / "policies"),
        "SIGNOFF_USERS_FILE": str(FIXTURES / "users.yaml"),
        "SIGNOFF_WORKER_INTERVAL_SECONDS": "0.2",
    }
    env.pop("SIGNOFF_TOKEN", None)
    return env


def spawn_server(
    env: dict[str, str], tmp_path: Path, name: str
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `signoff serve` (log in ``tmp_path/<name>.log``); see wait_ready."""
    port = free_port()
    with open(tmp_path / f"{name}.log", "w") as log:
        proc = subprocess.Popen(
            [*SIGNOFF, "serve"],
            env={**env, "SIGNOFF_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return proc, f"http://127.0.0.1:{port}"


def start_servers(
    env: dict[str, str], tmp_path: Path, names: tuple[str, ...]
) -> list[tuple[subprocess.Popen[bytes], str]]:
    """Start one `signoff serve` per name at once and return (process, URL) pairs once
    every one answers /readyz."""
    started = [spawn_server(env, tmp_path, name) for name in names]
    try:
        for name, (proc, url) in zip(names, started, strict=True):
            wait_ready(proc, url, tmp_path / f"{name}.log")
    except BaseException:
        stop([p for p, _ in started])
        raise
    return started


def start_server(
    env: dict[str, str], tmp_path: Path, name: str
) -> tuple[subprocess.Popen[bytes], str]:
    [started] = start_servers(env, tmp_path, (name,))
    return started


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.05)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(10)


def in_process_tokens(database_url: str, tmp_path: Path, users: tuple[str, ...]) -> dict[str, str]:
    """API tokens made in this process (the CLI's `token create` is tested in test_cli;
    each CLI start costs seconds of imports)."""
    app = build(make_settings(database_url, tmp_path), migrate=False)
    try:
        return {u: create_token(app.services, u, "tests") for u in users}
    finally:
        app.close()


def auth(tokens: dict[str, str], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[user]}"}


@pytest.fixture(scope="module")
def module_pg_database() -> Iterator[str]:
    """A PostgreSQL database for one module's shared servers: nothing else in the session
    resets it (the per-test reset of ``database_url`` works on ``pg_database``)."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> str:
    """One module's database, for servers its tests share: a copy of the SQLite template,
    or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("module-db") / "signoff.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("module_pg_database")
    return url
