"""Verifying a long audit log: it is read as a stream (a server-side cursor on
PostgreSQL, batches of rows), and an event tampered with anywhere in it, however many
batches in, is still found at its seq."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from signoff.adapters.db import tables as t
from signoff.adapters.db.engine import create_db_engine
from signoff.bootstrap import App, build
from signoff.domain.audit import GENESIS_HASH, chain_next
from signoff.services.views import verify_audit

from ..conftest import _reset_postgres, make_settings

EVENTS = 12_345  # many of the reader's batches (1,000 rows)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def long_log(database_url: str, tmp_path: Path) -> Iterator[App]:
    yield from _long_log(database_url, tmp_path)


@pytest.fixture
def pg_long_log(pg_database: str, tmp_path: Path) -> Iterator[App]:
    """The same on PostgreSQL alone (what its server-side cursor is about)."""
    _reset_postgres(pg_database)
    yield from _long_log(pg_database, tmp_path)


def _long_log(database_url: str, tmp_path: Path) -> Iterator[App]:
    """A chain of EVENTS events, written in one statement (as many use cases would)."""
    rows, seq, prev = [], 0, GENESIS_HASH
    for i in range(EVENTS):
        ev = chain_next(
            seq,
            prev,
            T0 + timedelta(seconds=i),
            f"user{i % 7}",
            "vote.cast",
            None if i % 5 == 0 else f"r-{i % 97}",
            {"i": i, "comment": 'say "ok" \\ ünïcode\n'},
        )
        rows.append(ev.__dict__)
        seq, prev = ev.seq, ev.hash
    engine = create_db_engine(database_url, 1)
    with engine.begin() as conn:
        conn.execute(t.audit_events.insert(), rows)
        conn.execute(t.audit_head.update().values(seq=seq, hash=prev))
    engine.dispose()
    app = build(make_settings(database_url, tmp_path))
    yield app
    app.close()


def change(app: App, statement: sa.Executable) -> None:
    with app.engine.begin() as conn:
        conn.execute(statement)


def test_a_long_untouched_log_verifies(long_log: App) -> None:
    report = verify_audit(long_log.services)
    assert report.ok and report.checked == EVENTS


@pytest.mark.parametrize("n", [1, 999, 1_001, 10_007, EVENTS])
def test_an_event_altered_at_position_n_of_many_is_found(long_log: App, n: int) -> None:
    a = t.audit_events
    change(long_log, a.update().where(a.c.seq == n).values(payload='{"i":-1}'))
    report = verify_audit(long_log.services)
    assert not report.ok
    assert report.broken_at == n and report.checked == n - 1
    assert report.problem == f"event {n} was altered: its hash does not match"


def test_an_event_removed_deep_in_the_log_is_found(long_log: App) -> None:
    a = t.audit_events
    change(long_log, a.delete().where(a.c.seq == 7_777))
    report = verify_audit(long_log.services)
    assert not report.ok and report.broken_at == 7_777


def test_postgresql_reads_the_log_through_a_server_side_cursor(pg_long_log: App) -> None:
    # (SQLite's cursor steps through the table: nothing is buffered there)
    long_log = pg_long_log
    with long_log.services.uow(write=False, snapshot=True) as uow:
        rows = uow.audit.chain()
        assert next(rows)[0] == 1
        cursors = uow.conn.execute(sa.text("SELECT name FROM pg_cursors")).scalars().all()  # type: ignore[attr-defined]
        assert cursors == ["signoff_audit_chain"]
        assert sum(1 for _ in rows) == EVENTS - 1
