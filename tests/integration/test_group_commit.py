"""SQLite group commit (``_SqliteWriter``): writers that queue behind one another share
one transaction, each in a savepoint of its own. What a user of the store would notice:
a write whose commit returned is stored and visible to every other connection; a write
that failed leaves nothing, and takes nothing of anyone else's with it; when the shared
commit itself fails, every writer in the group is told, and none of their work is kept.

The tests build groups on purpose: a writer holds the lock until the next one is queued
behind it (``queued``), so it leaves its transaction open for that one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

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
