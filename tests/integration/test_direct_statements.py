"""The request path's statements run on the driver's own cursor (``adapters/db/direct.py``)
store exactly what SQLAlchemy stores for the same values, on both databases: the same
text for times, JSON, booleans and dates, NULLs and JSON nulls alike, so every later read
(by SQLAlchemy, by another process, by `signoff audit verify`) sees no difference.

On PostgreSQL the statements that return nothing are held and sent in one pipeline: what
they wrote is read back in the same transaction, a rollback drops them (and they never
reach the connection's next user), and their errors fail the commit, storing nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from signoff.adapters.db import tables as t
from signoff.adapters.db.direct import Direct
from signoff.adapters.db.engine import create_db_engine, upgrade
from signoff.adapters.db.repositories import (
    _INSERT_OUTBOX,
    _INSERT_REQUEST,
    _MOVE_HEAD,
    _READ_HEAD,
    DatabaseUnitOfWork,
    _tally_upsert,
)
from signoff.domain.events import GrantRefusal

AT = datetime(2026, 12, 5, 9, 30, 1, 123456, tzinfo=UTC)


def request_row(rid: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": rid,
        "status": "pending",
        "requester": "dave",
        "action_type": "sql.execute",
        "action_target": "postgres/prod-main",
        "action_params": {"sql": "SELECT 'é' -- ünïcode", "n": 1.5, "none": None},
        "action_digest": "d" * 64,
        "reason": "why",
        "ticket": None,
        "context": {},
        "policy_name": "p",
        "policy_set_digest": "s",
        "stages": [{"name": "dba", "approvers": ["bob"], "quorum": 1}],
        "current_stage": 0,
        "grant_ttl_seconds": 300,
        "grant_uses": 1,
        "read_only": True,
        "executors": [],
        "redeemers": ["dave"],
        "viewers": [],
        "created_at": AT,
        "stage_started_at": AT.astimezone(UTC) + timedelta(seconds=1),
        "decided_at": None,
        "version": 0,
        "on_timeout": "deny",
        "escalation_level": 0,
        "reminders_sent": 0,
        "expires_at": None,
        "next_due_at": AT + timedelta(minutes=30),
        "deadline_at": AT + timedelta(hours=1),
        "fold_count": 0,
        "notify": [],
        "digest_seconds": None,
        "expiry_warned": False,
        "outcome": None,
        "requester_snapshot": None,
    }
    row.update(changes)
    return row


@pytest.fixture()
def engine(database_url: str) -> Any:
    e = create_db_engine(database_url, 1)
    upgrade(e)
    yield e
    e.dispose()


def raw(engine: sa.Engine, sql: str) -> list[tuple[Any, ...]]:
    """Rows as stored: the driver's values, no SQLAlchemy type processing."""
    with engine.connect() as conn:
        return list(conn.exec_driver_sql(sql).fetchall())


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"requester_snapshot": {"name": "dave", "groups": ["dev"]}, "ticket": "OPS-1"},
        {"decided_at": AT, "status": "approved", "outcome": "ok", "expiry_warned": True},
    ],
)
def test_a_request_row_is_stored_as_sqlalchemy_stores_it(
    engine: sa.Engine, changes: dict[str, Any]
) -> None:
    with engine.begin() as conn:
        _INSERT_REQUEST.execute(conn, request_row("direct", **changes))
        conn.execute(t.requests.insert(), request_row("orm", **changes))
    direct, orm = (
        raw(engine, f"SELECT * FROM requests WHERE id = '{rid}'")[0] for rid in ("direct", "orm")
    )
    assert direct[1:] == orm[1:]


def test_outbox_rows_tallies_and_the_audit_head_match_sqlalchemy(engine: sa.Engine) -> None:
    row = {
        "created_at": AT,
        "topic": "log",
        "request_id": None,
        "payload": {"event": "x", "to": ["bob"]},
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": AT + timedelta(seconds=5),
    }
    tally = {
        "requester": "dave",
        "action_type": "deploy",
        "day": date(2026, 12, 5),
        "action_target": "prod/x",
        "outcome": "approved",
    }
    with engine.begin() as conn:
        _INSERT_OUTBOX.execute(conn, row)
        conn.execute(t.outbox.insert(), row)
        upsert = _tally_upsert(engine.dialect.name)
        upsert.execute(conn, tally)
        upsert.execute(conn, tally)  # the second one counts on the first
        conn.execute(upsert.statement, {**tally, "requester": "erin"})
        seq, _ = _READ_HEAD.execute(conn, {}) or (None, None)
        _MOVE_HEAD.execute(conn, {"new_seq": (seq or 0) + 7, "new_hash": "h" * 64})
    first, second = raw(engine, "SELECT * FROM outbox ORDER BY id")
    assert first[1:] == second[1:]
    tallies = raw(engine, "SELECT * FROM history_tallies ORDER BY requester")
    assert [r[0] for r in tallies] == ["dave", "erin"]
    assert tallies[0][1:-1] == tallies[1][1:-1] and [r[-1] for r in tallies] == [2, 1]
    assert raw(engine, "SELECT seq, hash FROM audit_head") == [((seq or 0) + 7, "h" * 64)]


def test_a_row_missing_a_column_is_refused_not_stored_with_a_null(engine: sa.Engine) -> None:
    insert = Direct(lambda: t.outbox.insert(), columns=True)
    good = {"created_at": AT, "topic": "log", "request_id": None, "payload": {}}
    more = {"status": "pending", "attempts": 0, "next_attempt_at": AT}
    with engine.begin() as conn:
        insert.execute(conn, {**good, **more})
        renamed = {**good, "status": "pending", "attempt": 0, "next_attempt_at": AT}
        with pytest.raises(KeyError, match="attempts"):
            insert.execute(conn, renamed)
        with pytest.raises(TypeError, match="expected the columns"):
            insert.execute(conn, good)
    assert len(raw(engine, "SELECT * FROM outbox")) == 1


def test_query_listeners_still_see_the_statements(engine: sa.Engine) -> None:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    with engine.begin() as conn:
        _READ_HEAD.execute(conn, {})
    assert any(s.startswith("SELECT audit_head.seq") for s in seen)


def outbox_row(topic: str, **changes: Any) -> dict[str, Any]:
    return {
        "created_at": AT,
        "topic": topic,
        "request_id": None,
        "payload": {},
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": AT,
        **changes,
    }


def test_what_a_statement_wrote_is_read_back_in_its_transaction(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _INSERT_OUTBOX.execute(conn, outbox_row("first"))
        topics = conn.execute(sa.select(t.outbox.c.topic)).scalars().all()
        assert topics == ["first"]
    assert [r[0] for r in raw(engine, "SELECT topic FROM outbox")] == ["first"]


def test_a_rollback_drops_the_statements_and_the_next_user_never_sends_them(
    engine: sa.Engine,
) -> None:
    with engine.connect() as conn:
        conn.begin()
        _INSERT_OUTBOX.execute(conn, outbox_row("rolled back"))
        conn.rollback()
    with engine.connect() as conn, conn.begin():  # the pool's one connection, again
        _INSERT_OUTBOX.execute(conn, outbox_row("kept"))
    conn = engine.connect()
    conn.begin()
    _INSERT_OUTBOX.execute(conn, outbox_row("closed without a word"))
    conn.close()
    with engine.begin() as conn:
        conn.execute(sa.select(1))
    assert [r[0] for r in raw(engine, "SELECT topic FROM outbox")] == ["kept"]


def test_a_failing_statement_fails_the_commit_and_nothing_of_the_transaction_is_stored(
    engine: sa.Engine,
) -> None:
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        _INSERT_OUTBOX.execute(conn, outbox_row("before"))
        _INSERT_REQUEST.execute(conn, request_row("twice"))
        _INSERT_REQUEST.execute(conn, request_row("twice"))  # the same id
    assert raw(engine, "SELECT topic FROM outbox") == []
    assert raw(engine, "SELECT id FROM requests") == []


def refusal() -> GrantRefusal:
    return GrantRefusal(actor="dave", grant_id="g", reason="revoked", action_digest="d" * 64)


def test_the_chain_read_in_a_write_unit_of_work_includes_its_own_appends(
    engine: sa.Engine,
) -> None:
    """The chain read in a unit of work that appended to it includes those appends (read
    through the driver's cursor, past SQLAlchemy: held statements are sent first)."""
    with DatabaseUnitOfWork(engine) as uow:
        appended = uow.audit.append_all(AT, None, [refusal(), refusal()])
        chain = [row[0] for row in uow.audit.chain()]  # before anything else is run
        assert chain[-2:] == [ev.seq for ev in appended]


def test_statements_on_a_connection_without_an_explicit_begin_are_not_lost(
    engine: sa.Engine,
) -> None:
    """A statement run on a connection with no transaction begun starts one, as
    SQLAlchemy's own execute would: the commit that follows stores it."""
    with engine.connect() as conn:
        _INSERT_OUTBOX.execute(conn, outbox_row("autobegin"))
        conn.commit()
    with engine.connect() as conn:
        topics = conn.execute(sa.select(t.outbox.c.topic)).scalars().all()
    assert topics == ["autobegin"]


def test_a_held_statements_error_names_the_statement_that_failed(engine: sa.Engine) -> None:
    """The error of statements sent together names the one that failed among them (the
    pipeline does not say which)."""
    with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
        _INSERT_OUTBOX.execute(conn, outbox_row("bad", status=None))  # NOT NULL: fails
        _MOVE_HEAD.execute(conn, {"new_seq": 0, "new_hash": "x"})  # innocent, held after it
        conn.execute(sa.text("SELECT 1"))  # sends both
    assert "INSERT INTO outbox" in str(caught.value.statement), caught.value.statement


def test_a_held_failure_is_not_taken_for_an_already_used_link(engine: sa.Engine) -> None:
    """A held statement's failure is not taken for the failure a later statement expects:
    here a link's "already used" (an IntegrityError of its own insert)."""
    with DatabaseUnitOfWork(engine) as uow, pytest.raises(sa.exc.IntegrityError):
        _INSERT_OUTBOX.execute(uow.conn, outbox_row("bad", status=None))  # held on PostgreSQL
        uow.links.use("jti-1", AT)  # not False ("already used")
