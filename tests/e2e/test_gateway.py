"""The gateway as users meet it: `signoff run` in one command, and execute calls raced
through two server processes on one PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from signoff.adapters.db import tables as t

from ..conftest import FIXTURES
from ..integration.test_email import Inbox, text_of
from ..integration.test_gateway import targets_file
from .conftest import SIGNOFF, auth, base_env, free_port, in_process_tokens, start_servers, stop
from .terminal import Terminal


def gateway_env(database_url: str, tmp_path: Path, dsn: str, smtp_port: int) -> dict[str, str]:
    return {
        **base_env(database_url, tmp_path),
        "SIGNOFF_CHANNELS": "email",
        "SIGNOFF_SMTP_PORT": str(smtp_port),
        # the commands printed in messages run as `signoff`, like a user's shell has it
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SIGNOFF_POLICIES_DIR": str(FIXTURES / "gateway"),
        "SIGNOFF_TARGETS_FILE": str(targets_file(tmp_path)),
        "SCRATCH_DSN": dsn,
        "RESTART_TOKEN": "x",
        "DEPLOY_TOKEN": "y",
    }


@contextmanager
def gateway_processes(
    database_url: str, data_dir: Path, dsn: str, names: tuple[str, ...], inbox: Inbox
) -> Iterator[dict[str, Any]]:
    env = gateway_env(database_url, data_dir, dsn, inbox.port)
    # tokens first: that makes the signing key before the servers start side by side
    tokens = in_process_tokens(database_url, data_dir, ("dave", "bob"))
    started = start_servers(env, data_dir, names)
    try:
        yield {
            "urls": [url for _, url in started],
            "env": env,
            "db": database_url,
            "tokens": tokens,
            "inbox": inbox,
        }
    finally:
        stop([p for p, _ in started])


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    """A real SMTP server on loopback that the module's servers mail to."""
    box = Inbox()
    box.port = free_port()
    smtp = Controller(box, hostname="127.0.0.1", port=box.port)
    smtp.start()
    yield box
    smtp.stop()


@pytest.fixture(scope="module")
def pg_replicas(
    module_pg_database: str, tmp_path_factory: pytest.TempPathFactory, scratch: str, inbox: Inbox
) -> Iterator[dict[str, Any]]:
    """Two servers on one PostgreSQL database of the module's own, shared by its tests
    (each works on requests of its own)."""
    data_dir = tmp_path_factory.mktemp("gateway-pg")
    with gateway_processes(module_pg_database, data_dir, scratch, ("a", "b"), inbox) as servers:
        yield servers


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def gateway(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    scratch: str,
    inbox: Inbox,
) -> Iterator[dict[str, Any]]:
    """A server on SQLite, or the first of the PostgreSQL replicas."""
    if request.param == "postgresql":
        yield request.getfixturevalue("pg_replicas")
        return
    data_dir = tmp_path_factory.mktemp("gateway-sqlite")
    database_url = f"sqlite:///{data_dir / 'signoff.db'}"
    shutil.copy(sqlite_template, data_dir / "signoff.db")
    with gateway_processes(database_url, data_dir, scratch, ("a",), inbox) as servers:
        yield servers


def test_signoff_run_asks_waits_executes_and_prints(gateway, target_db: str) -> None:
    url = gateway["urls"][0]
    env = {**gateway["env"], "SIGNOFF_URL": url}
    tokens = gateway["tokens"]
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
    write = "UPDATE accounts SET balance = 7 WHERE id = 5"
    run = subprocess.Popen(
        [*SIGNOFF, "run", "--type", "sql.execute", "--target", "pg/scratch",
         "--param", f"sql={write}", "--reason", "fix"],
        env=dave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    pending: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not pending and time.monotonic() < deadline:
        time.sleep(0.1)
        items = httpx.get(
            f"{url}/v1/requests", params={"status": "pending"}, headers=auth(tokens, "bob")
        ).json()["items"]
        pending = [r for r in items if r["action"]["params"].get("sql") == write]
    [asked] = pending
    approve = subprocess.run(
        [*SIGNOFF, "approve", asked["id"]], env=bob, capture_output=True, text=True
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
    assert denied.returncode == 1
    assert "denied: policy 'no-dangerous-sql' denies it: Writes to every row" in denied.stderr


def test_fifty_executes_through_two_replicas_run_the_statement_once(
    pg_replicas, target_db: str
) -> None:
    url_a, url_b = pg_replicas["urls"]
    tokens = pg_replicas["tokens"]
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
    engine = sa.create_engine(pg_replicas["db"])
    with engine.connect() as conn:
        runs = conn.execute(
            sa.select(sa.func.count()).where(t.executions.c.request_id == r["id"])
        ).scalar_one()
    engine.dispose()
    assert runs == 1


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SIGNOFF, *args], env=env, capture_output=True, text=True, timeout=60)


def mail_about(inbox: Inbox, to: str, rid: str, subject: str) -> str:
    """The text of the mail to ``to`` about request ``rid`` (waits for the worker)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for m in inbox.to(to):
            body = text_of(m)
            if subject in str(m["Subject"]) and rid in body:
                return body
        time.sleep(0.05)
    raise AssertionError(f"no mail to {to} about {rid} ({subject})")


def commands_in(body: str) -> list[str]:
    """The command lines a message prints (indented, starting with the program)."""
    return [line.strip() for line in body.splitlines() if line.startswith("  signoff ")]


def run_as_printed(env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    """Run a command copied out of a message, in a POSIX shell, as a user would."""
    return subprocess.run(
        ["sh", "-c", command], env=env, capture_output=True, text=True, timeout=60
    )


def test_every_command_a_message_prints_runs(gateway, target_db: str) -> None:
    url, inbox, tokens = gateway["urls"][0], gateway["inbox"], gateway["tokens"]
    env = {**gateway["env"], "SIGNOFF_URL": url}
    dave = {**env, "SIGNOFF_TOKEN": tokens["dave"]}
    bob = {**env, "SIGNOFF_TOKEN": tokens["bob"]}

    # an approver's mail: the commands to answer from a terminal
    write = "UPDATE accounts SET balance = 9 WHERE id = 4"
    asked = cli(dave, "request", "--type", "sql.execute", "--target", "pg/scratch",
                "--param", f"sql={write}", "--reason", "fix", "--json")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    rid = json.loads(asked.stdout)["id"]
    body = mail_about(inbox, "bob@example.com", rid, "Approval needed")
    approve, deny = commands_in(body)
    assert (approve, deny) == (f"signoff approve {rid}", f"signoff deny {rid} --comment why")
    voted = run_as_printed(bob, approve)
    assert voted.returncode == 0, voted.stderr

    # the requester's mail for a target Signoff runs: `signoff execute`, which works
    body = mail_about(inbox, "dave@example.com", rid, "approved")
    assert commands_in(body) == [f"signoff execute {rid}"]
    ran = run_as_printed(dave, commands_in(body)[0])
    assert ran.returncode == 0 and "executed: UPDATE 1" in ran.stderr, ran.stderr

    # a grant another tool redeems: the complete redeem line (every bound param, quoted)
    odd = "why=it's $HOME; ok"  # quoted in the printed line, or the shell would change it
    asked = cli(dave, "request", "--type", "secret.read", "--target", "vault/app",
                "--param", "path=db/password", "--param", odd, "--json")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    rid = json.loads(asked.stdout)["id"]
    voted = run_as_printed(bob, f"signoff approve {rid}")
    assert voted.returncode == 0, voted.stderr
    body = mail_about(inbox, "dave@example.com", rid, "approved")
    [redeem] = commands_in(body)
    assert redeem.startswith(f'signoff grant redeem "$(signoff grant token {rid})" ')
    redeemed = run_as_printed(dave, redeem)
    assert redeemed.returncode == 0 and "redeemed" in redeemed.stdout, redeemed.stderr
    again = run_as_printed(dave, redeem)  # one use: the second says why there is no token
    assert again.returncode != 0, again.stderr
    assert f"request {rid} has no grant token for you (executed by dave)" in again.stderr


def test_a_typo_in_the_target_is_refused_before_anyone_is_asked(gateway) -> None:
    url, tokens = gateway["urls"][0], gateway["tokens"]
    dave = {**gateway["env"], "SIGNOFF_URL": url, "SIGNOFF_TOKEN": tokens["dave"]}
    typo = cli(dave, "run", "--type", "sql.execute", "--target", "pg/scrach",
               "--param", "sql=UPDATE accounts SET balance = 1 WHERE id = 1")  # fmt: skip
    assert typo.returncode == 2
    assert "no target named 'pg/scrach' is configured to run sql.execute" in typo.stderr
    assert "did you mean pg/scratch?" in typo.stderr
    mine = httpx.get(
        f"{url}/v1/requests", params={"requester": "dave"}, headers=auth(tokens, "dave")
    ).json()["items"]
    assert not any(r["action"]["target"] == "pg/scrach" for r in mine)  # nothing was stored


RESULT_SQL = (
    "SELECT id AS account_id, email, card AS card_number_on_file, balance AS balance_in_cents,"
    " 'a note long enough to need more than one line at eighty columns, about account ' || id"
    " AS support_note, md5(card) || md5(email) AS card_email_digest"
    " FROM accounts WHERE id < 3 ORDER BY id"
)


def table_rows(rows: list[str]) -> list[list[str]]:
    """The cells of a Rich table drawn with a line between rows: each cell's folded or
    wrapped pieces put back together (without the spaces a wrap removed)."""
    found: list[list[str]] = []
    block: list[list[str]] = []
    for row in rows:
        if row.startswith(("├", "└")) and block:
            found.append(["".join(piece) for piece in zip(*block, strict=True)])
            block = []
        elif row.startswith("│"):
            block.append(["".join(cell.split()) for cell in row.split("│")[1:-1]])
    return found


def test_signoff_run_results_fit_80_and_120_columns_and_pipe_as_plain_lines(
    gateway, target_db: str
) -> None:
    """Every value whole: at 120 columns a table that folds long cells, at 80 (where the
    column names alone do not fit) one "column: value" line each, piped tab-separated
    lines; the asking options of `request` work on `run` too."""
    env = {**gateway["env"], "SIGNOFF_URL": gateway["urls"][0]}
    dave = {**env, "SIGNOFF_TOKEN": gateway["tokens"]["dave"]}
    ask = [*SIGNOFF, "run", "--type", "sql.execute", "--target", "pg/scratch",
           "--param", f"sql={RESULT_SQL}", "--risk", "low", "--label", "team=billing",
           "--link", "https://example.com/OPS-9"]  # fmt: skip
    terms = {w: Terminal(ask, dave, w) for w in (80, 120)}
    piped = subprocess.run(ask, env=dave, capture_output=True, text=True, timeout=60)
    names = ["account_id", "email", "card_number_on_file", "balance_in_cents",
             "support_note", "card_email_digest"]  # fmt: skip
    note = "a note long enough to need more than one line at eighty columns, about account "
    # the digest is computed from masked columns: masked too (a hash of an email is
    # as good as the email to whoever has a list of addresses)
    expected = [[str(i), "****", "****", "100", f"{note}{i}", "****"] for i in (1, 2)]

    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines() == ["\t".join(row) for row in [names, *expected]]
    [line] = piped.stderr.splitlines()  # one line, though longer than 80
    rid = re.fullmatch(r"executed: 2 row\(s\) \(request (\S+) is executed; output sha256 \w{12}…\)",
                       line)[1]  # fmt: skip
    context = httpx.get(
        f"{env['SIGNOFF_URL']}/v1/requests/{rid}", headers=auth(gateway["tokens"], "dave")
    ).json()["context"]
    assert context == {"risk": "low", "labels": {"team": "billing"},
                       "links": ["https://example.com/OPS-9"]}  # fmt: skip

    for w, term in terms.items():
        screen = term.finish()
        assert term.proc.returncode == 0, screen.text
        assert screen.cuts == [] and all(len(row) <= w for row in screen.rows), screen.text
        said = " ".join(screen.text.split())
        assert re.search(r"executed: 2 row\(s\) \(request [0-9a-f-]{36} is executed;", said)
        if w == 120:
            assert screen.rows[1].split() == ["┃", *" ┃ ".join(names).split(), "┃"]
            assert table_rows(screen.rows) == [["".join(v.split()) for v in r] for r in expected]
        else:
            assert "┃" not in screen.text
            for i, row in enumerate(expected, 1):
                assert f"row {i}:" in screen.rows
                for name, value in zip(names, row, strict=True):
                    assert f"{name}: {value}" in said, screen.text
