"""SQLite group commit (``_SqliteWriter``): writers that queue behind one another share
one transaction, each in a savepoint of its own. What a user of the store would notice:
a write whose commit returned is stored and visible to every other connection; a write
that failed leaves nothing, and takes nothing of anyone else's with it; when the shared
commit itself fails, every writer in the group is told, and none of their work is kept.

The tests build groups on purpose: a writer holds the lock until the next one is queued
behind it (``queued``), so it leaves its transaction open for that one."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from signoff.adapters.db.engine import create_db_engine
from signoff.adapters.db.repositories import DatabaseUnitOfWork, _sqlite_writer


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    e = create_db_engine(f"sqlite:///{tmp_path}/g.db")
    with e.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO parent (id) VALUES (1)")
        # checked at COMMIT: a row pointing nowhere makes the shared commit fail
        conn.exec_driver_sql(
            "CREATE TABLE item (name TEXT PRIMARY KEY, parent INTEGER NOT NULL "
            "REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
        )
    yield e
    e.dispose()


def stored(engine: sa.Engine) -> set[str]:
    """What another connection reads: only committed rows."""
    other = sa.create_engine(str(engine.url))
    try:
        with other.connect() as conn:
            return {r[0] for r in conn.exec_driver_sql("SELECT name FROM item")}
    finally:
        other.dispose()


def wait_for(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.001)


class Writer(threading.Thread):
    """One unit of work inserting ``name`` (pointing at ``parent``), committing unless
    ``fail``; it holds on before committing until ``behind`` writers are queued."""

    def __init__(
        self, engine: sa.Engine, name: str, *, parent: int = 1, fail: bool = False, behind: int = 0
    ) -> None:
        super().__init__()
        self.engine, self.item, self.parent, self.fail, self.behind = (
            engine,
            name,
            parent,
            fail,
            behind,
        )
        self.entered = threading.Event()
        self.error: BaseException | None = None
        self.seen_after_commit: set[str] | None = None
        self.group: object = None

    def run(self) -> None:
        writer = _sqlite_writer(self.engine)
        try:
            with DatabaseUnitOfWork(self.engine) as uow:
                self.group = writer.group
                self.entered.set()
                uow.conn.exec_driver_sql(
                    "INSERT INTO item (name, parent) VALUES (?, ?)", (self.item, self.parent)
                )
                wait_for(lambda: writer.queued >= self.behind)
                if self.fail:
                    raise ValueError("this write fails")
                uow.commit()
            self.seen_after_commit = stored(self.engine)
        except BaseException as exc:
            self.error = exc


def run_chain(engine: sa.Engine, writers: list[Writer]) -> None:
    """Start the writers one after another, each once the one before holds the lock, so
    each finds the next queued behind it: one group, in this order."""
    for w in writers:
        w.start()
        w.entered.wait(10)
    for w in writers:
        w.join(10)


def test_writers_queued_behind_one_another_are_committed_together_and_each_sees_its_own(
    engine: sa.Engine,
) -> None:
    writers = [Writer(engine, f"w{i}", behind=1 if i < 3 else 0) for i in range(4)]
    run_chain(engine, writers)
    assert [w.error for w in writers] == [None] * 4
    assert len({id(w.group) for w in writers}) == 1  # one transaction for the four
    assert stored(engine) == {"w0", "w1", "w2", "w3"}
    # nobody's commit returned before their row could be read from another connection
    for w in writers:
        assert w.seen_after_commit is not None and w.item in w.seen_after_commit


def test_a_failed_write_in_a_group_leaves_nothing_and_takes_nothing_of_the_others(
    engine: sa.Engine,
) -> None:
    writers = [
        Writer(engine, "first", behind=1),
        Writer(engine, "fails", behind=1, fail=True),
        Writer(engine, "last"),
    ]
    run_chain(engine, writers)
    assert writers[0].error is None and writers[2].error is None
    assert isinstance(writers[1].error, ValueError)
    assert stored(engine) == {"first", "last"}


def test_the_first_writer_failing_ends_its_group_and_the_next_starts_a_new_one(
    engine: sa.Engine,
) -> None:
    writers = [Writer(engine, "fails", behind=1, fail=True), Writer(engine, "next")]
    run_chain(engine, writers)
    assert isinstance(writers[0].error, ValueError) and writers[1].error is None
    assert stored(engine) == {"next"}


def test_when_the_shared_commit_fails_every_writer_in_the_group_is_told_and_nothing_is_kept(
    engine: sa.Engine,
) -> None:
    writers = [
        Writer(engine, "a", behind=1),
        Writer(engine, "dangling", parent=99, behind=1),  # fails only at COMMIT
        Writer(engine, "c"),
    ]
    run_chain(engine, writers)
    for w in writers:
        assert isinstance(w.error, sa.exc.IntegrityError), w.error
        assert "FOREIGN KEY" in str(w.error)
    assert stored(engine) == set()
    # and the store goes on: the next write is a group of its own
    after = Writer(engine, "after")
    after.start()
    after.join(10)
    assert after.error is None and stored(engine) == {"after"}


def test_many_concurrent_writers_each_find_exactly_their_committed_rows(
    engine: sa.Engine,
) -> None:
    results: dict[str, BaseException | None] = {}

    def work(i: int) -> None:
        name = f"t{i}"
        try:
            with DatabaseUnitOfWork(engine) as uow:
                uow.conn.exec_driver_sql("INSERT INTO item (name, parent) VALUES (?, 1)", (name,))
                if i % 5 == 0:
                    raise ValueError("rolled back")
                uow.commit()
            results[name] = None
        except ValueError as exc:
            results[name] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(60)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    assert len(results) == 60
    assert stored(engine) == {n for n, e in results.items() if e is None}
    assert len(stored(engine)) == 48
    assert _sqlite_writer(engine).group is None  # every group ended


def daemon(w: Writer) -> Writer:
    """A writer that cannot hold the run up if a test fails."""
    w.daemon = True
    return w


def test_a_savepoint_release_that_fails_does_not_leave_the_writer_lock_held(
    engine: sa.Engine,
) -> None:
    """A writer whose savepoint cannot be released fails, and so does the group it joined
    (its earlier members are told); the lock is free for the next writer."""

    def boom(*_: Any) -> None:
        raise RuntimeError("RELEASE SAVEPOINT failed")

    sa.event.listen(engine, "release_savepoint", boom)  # only savepoint members release
    first = daemon(Writer(engine, "first", behind=1))
    second = daemon(Writer(engine, "second"))
    first.start()
    assert first.entered.wait(10)
    second.start()
    second.join(10)
    first.join(10)
    assert isinstance(second.error, RuntimeError)
    assert not first.is_alive(), "the first writer's commit never returned (group never ended)"
    later = daemon(Writer(engine, "later"))
    later.start()
    later.join(10)
    assert not later.is_alive(), "the next writer hangs: the writer lock was never released"
    assert isinstance(first.error, RuntimeError)  # told: its work went with the group
    assert stored(engine) == {"later"}


class _InterruptedOnce:
    """The writer's lock, whose first acquire is interrupted (KeyboardInterrupt, or any
    BaseException raised while a thread waits for the lock)."""

    def __init__(self, lock: Any) -> None:
        self.lock, self.raised = lock, False

    def acquire(self, *a: Any, **k: Any) -> bool:
        if not self.raised:
            self.raised = True
            raise KeyboardInterrupt
        return bool(self.lock.acquire(*a, **k))

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def test_an_interrupted_wait_for_the_lock_does_not_leave_queued_counting_a_ghost(
    engine: sa.Engine,
) -> None:
    """A writer interrupted while it waits for the lock is not counted as queued after:
    a count one too high would make every later writer wait for a writer that never
    comes."""
    writer = _sqlite_writer(engine)
    writer.lock = _InterruptedOnce(writer.lock)  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt), DatabaseUnitOfWork(engine):
        pass
    assert writer.queued == 0, f"queued drifted to {writer.queued}"


def test_after_an_interrupted_wait_a_lone_writer_still_commits(engine: sa.Engine) -> None:
    writer = _sqlite_writer(engine)
    writer.lock = _InterruptedOnce(writer.lock)  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt), DatabaseUnitOfWork(engine):
        pass
    alone = daemon(Writer(engine, "alone"))
    alone.start()
    alone.join(10)
    assert not alone.is_alive(), "a lone writer's commit never returns"
    assert stored(engine) == {"alone"}


def test_a_failing_begin_raises_sqlalchemys_error_like_every_other_statement(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """A BEGIN that fails (the database locked by a writer outside Signoff's lock) fails
    as SQLAlchemy's error, which bootstrap and the CLI turn into one line."""
    sa.event.listen(engine, "connect", lambda dbapi, _r: dbapi.execute("PRAGMA busy_timeout=50"))
    engine.dispose()  # new connections get the short timeout
    other = sqlite3.connect(f"{tmp_path}/g.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a writer that does not take the -writer flock
    try:
        with pytest.raises(sa.exc.OperationalError), DatabaseUnitOfWork(engine):
            pass
        with pytest.raises(sa.exc.OperationalError), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            conn.commit()
            conn.execute(sa.text("INSERT INTO item (name, parent) VALUES ('x', 1)"))
    finally:
        other.rollback()
        other.close()


def test_a_disposed_engine_leaves_no_lock_file_open_behind(tmp_path: Path) -> None:
    """An engine's writer lets go of its lock file when the engine is disposed: a process
    that builds many applications (the test suite, an embedding) keeps no descriptor."""

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    for i in range(20):
        e = create_db_engine(f"sqlite:///{tmp_path}/e{i}.db", 1)
        with DatabaseUnitOfWork(e) as uow:
            uow.conn.exec_driver_sql("CREATE TABLE x (a INTEGER)")
            uow.commit()
        e.dispose()
        del e, uow
    assert open_fds() - before < 5, f"{open_fds() - before} descriptors left open"


def test_each_writer_told_of_a_failed_group_commit_gets_its_own_exception(
    engine: sa.Engine,
) -> None:
    """Every writer of a group whose commit failed gets an exception of its own (of the
    same kind): one object raised in many threads would gather their tracebacks."""
    writers = [
        Writer(engine, "a", behind=1),
        Writer(engine, "dangling", parent=99, behind=1),  # fails only at COMMIT
        Writer(engine, "c"),
    ]
    run_chain(engine, writers)
    errors = [w.error for w in writers]
    assert all(isinstance(e, sa.exc.IntegrityError) for e in errors)
    assert len({id(e) for e in errors}) == 3, "one exception object shared by all members"
    runs = [f.name for f in traceback.extract_tb(errors[0].__traceback__)].count("run")
    assert runs == 1, f"the traceback walks {runs} threads' Writer.run"
