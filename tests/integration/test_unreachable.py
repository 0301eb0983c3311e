"""A database that cannot be reached, or a connection string with an odd password, is
one line and an exit code, never a traceback, and never shows the password."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from signoff.adapters.event_bus import InProcessEventBus
from signoff.adapters.pg_notify import PostgresListener

from ..conftest import PG_ADMIN_URL, _pg_reachable

PASSWORD = "pa%ss word-7e21"


@pytest.mark.parametrize(
    "command", [["audit", "verify"], ["db", "upgrade"], ["token", "create", "--user", "alice"]]
)
def test_cli_commands_on_an_unreachable_database_say_so_in_one_line(
    tmp_path: Path, command
) -> None:
    env = {
        **os.environ,
        "SIGNOFF_DATA_DIR": str(tmp_path),
        "SIGNOFF_DATABASE_URL": f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:1/signoff",
    }
    done = subprocess.run(
        [sys.executable, "-m", "signoff", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot use the database at")
    assert "Connection refused" in lines[0] and "Traceback" not in done.stderr
    assert PASSWORD not in done.stderr + done.stdout and "7e21" not in done.stderr


def test_the_listener_reads_a_password_with_a_space_and_a_percent(caplog) -> None:
    """The replicas' LISTEN connection parses the URL as the engine does (the password
    is ignored by trust auth here, but must not break parsing or reach the log)."""
    problem = _pg_reachable()
    if problem is not None:
        pytest.fail(f"PostgreSQL is needed for this test: {problem}")
    base = PG_ADMIN_URL.replace(
        "postgresql://postgres@", f"postgresql+psycopg://postgres:{PASSWORD}@"
    )
    caplog.set_level(logging.DEBUG)
    listener = PostgresListener(base, InProcessEventBus()).start()
    try:
        assert listener.ready.wait(10), caplog.text
    finally:
        listener.stop()
    assert PASSWORD not in caplog.text and "7e21" not in caplog.text
    unreachable = PostgresListener(
        f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:1/x", InProcessEventBus()
    ).start()
    deadline = time.monotonic() + 10
    while "reconnecting" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    unreachable.stop()
    assert "reconnecting" in caplog.text and "7e21" not in caplog.text
