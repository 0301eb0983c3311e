"""A postgres target's pooled connections: each execution starts from a clean session on
a reused connection (nothing one statement sets reaches the next, and the grant's READ
ONLY and the target's statement timeout hold whatever the last one did), and a pooled
connection that died meanwhile is replaced without running the statement twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from signoff.adapters.targets_file import load_targets
from signoff.domain.actions import Action
from signoff.services.ports import Executor


@pytest.fixture
def pg(tmp_path: Path, monkeypatch, target_db: str) -> Iterator[Executor]:
    monkeypatch.setenv("SCRATCH_DSN", target_db)
    path = tmp_path / "targets.yaml"
    target = {
        "name": "pg",
        "executor": "postgres",
        "dsn": {"env": "SCRATCH_DSN"},
        "statement_timeout": "1s",
        "pool_size": 1,  # every execution on the same connection
    }
    path.write_text(yaml.safe_dump({"targets": [target]}))
    executor = load_targets(path)["pg"]
    yield executor
    executor.close()  # type: ignore[attr-defined]


def run(pg: Executor, text: str, read_only: bool = True) -> tuple[bool, str, list[list[object]]]:
    done = pg.run(Action("sql.execute", "pg", {"sql": text}), read_only)
    return done.ok, done.summary, done.output.get("rows", [])


def backend(pg: Executor) -> object:
    ok, _, rows = run(pg, "SELECT pg_backend_pid()")
    assert ok
    return rows[0][0]


def test_nothing_a_statement_sets_reaches_the_next_on_the_same_connection(pg) -> None:
    pid = backend(pg)
    leaks = [
        "SELECT set_config('search_path', 'nowhere', false)",
        "SELECT set_config('application_name', 'leak', false)",
        "SELECT set_config('statement_timeout', '0', false)",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "PREPARE leaked AS SELECT 1",
    ]
    for text in leaks:
        assert run(pg, text)[0], text
    assert run(pg, "CREATE TEMP TABLE leaked_rows (x int)", read_only=False)[0]
    assert run(pg, "SELECT 1 / 0")[1].startswith("error 22012")  # a failed one, too
    assert backend(pg) == pid  # all on one reused connection, which forgot all of it
    assert run(pg, "SHOW search_path")[2] == [['"$user", public']]
    assert run(pg, "SELECT current_setting('application_name')")[2] == [[""]]
    assert run(pg, "SELECT count(*) FROM pg_prepared_statements")[2] == [[0]]
    assert not run(pg, "SELECT * FROM leaked_rows")[0]
    # the target's timeout and the grant's READ ONLY hold
    assert run(pg, "SELECT pg_sleep(3)")[1] == "cancelled: the statement ran past 1000 ms"
    ok, summary, _ = run(pg, "SELECT setval('ticket_seq', 500)")
    assert not ok and summary.startswith("refused: the grant is read-only")
    assert backend(pg) == pid


def test_a_dead_pooled_connection_is_replaced_and_the_statement_runs_once(
    pg, target_db: str
) -> None:
    pid = backend(pg)
    with psycopg.connect(target_db, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        ok, summary, _ = run(
            pg, "UPDATE accounts SET balance = balance + 1 WHERE id = 2", read_only=False
        )
        assert ok and summary == "UPDATE 1"
        assert admin.execute("SELECT balance FROM accounts WHERE id = 2").fetchone() == (101,)
    assert backend(pg) != pid


def test_values_of_every_kind_come_back_as_json(pg) -> None:
    """Columns psycopg gives as ints and text pass as they are; the others are
    converted, also in a column where only some rows need it."""
    ok, _, rows = run(
        pg,
        "SELECT 1 AS i, 'a' AS t, 1.5::numeric AS n, date '2026-12-05' AS d,"
        " '\\x0102'::bytea AS b, ARRAY[1, 2] AS a, '{\"k\": [1]}'::jsonb AS j, NULL AS z,"
        " v FROM (VALUES (NULL::interval), (interval '90 seconds')) AS x(v)",
    )
    assert ok
    assert rows == [
        [1, "a", "1.5", "2026-12-05", "\\x0102", [1, 2], {"k": [1]}, None, None],
        [1, "a", "1.5", "2026-12-05", "\\x0102", [1, 2], {"k": [1]}, None, "0:01:30"],
    ]
