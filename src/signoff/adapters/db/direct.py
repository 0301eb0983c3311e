"""The request path's statements, run on the driver's own cursor.

A request costs a handful of statements (its row, its approvers or grant, the audit
events and head, the outbox, the requester's tally). Through SQLAlchemy each execution
cost about 35 µs on SQLite, most of it SQLAlchemy's bookkeeping (cache keys, execution
context, result set-up), against 5 to 10 µs of SQLite's own work; on PostgreSQL each was
also a round trip to the server. Here each statement is compiled once by SQLAlchemy for
the dialect, its parameters converted by the column types' own bind processors exactly
as SQLAlchemy would, and handed to the driver:

- on SQLite, at once;
- on PostgreSQL, the statements that return nothing are held and sent together, in one
  pipeline (psycopg's pipeline mode: one round trip for all of them), just before the
  next statement SQLAlchemy runs on the connection or before the commit; a rollback
  drops them. Their errors surface there, and fail the unit of work as a whole.

Listeners of ``before_cursor_execute`` (the query-plan tests) still see every statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Engine

_HELD = "signoff_held_statements"  # Connection.info key: statements not sent yet


class Direct:
    """One statement: built once, compiled once per dialect. ``columns``: an INSERT whose
    columns are the keys of the values it is first run with (every later run must give
    the same keys). ``hold``: held on PostgreSQL although it returns rows (nobody reads
    them)."""

    def __init__(self, build: Callable[[], Any], columns: bool = False, hold: bool = False) -> None:
        self._build = build
        self._columns = columns
        self._hold = hold
        self._statement: Any = None
        self._compiled: dict[str, _Compiled] = {}

    @property
    def statement(self) -> Any:
        if self._statement is None:
            self._statement = self._build()
        return self._statement

    def execute(
        self, conn: Connection, values: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> tuple[Any, ...] | None:
        """Run with ``values`` (a list of them: once per item, as executemany); the first
        row of the result, if the statement returns rows."""
        many = not isinstance(values, Mapping)
        name = conn.dialect.name
        if not conn.in_transaction():
            conn.begin()  # as SQLAlchemy's own execute would (autobegin)
        compiled = self._compiled.get(name)
        if compiled is None:
            first = values if isinstance(values, Mapping) else (values[0] if values else None)
            if first is None:
                return None
            keys = list(first) if self._columns else None
            compiled = self._compiled[name] = _Compiled(self.statement, conn.dialect, keys)
        args: Any
        if isinstance(values, Mapping):
            args = compiled.args(values)
        else:
            args = [compiled.args(v) for v in values]
        if many and not args:
            return None
        if name == "postgresql" and (self._hold or not compiled.returns_rows):
            conn.info.setdefault(_HELD, []).append((compiled.sql, args, many))
            return None
        if name == "postgresql":
            send_held(conn)
        return compiled.run(conn, args, many)


class _Compiled:
    def __init__(self, statement: Any, dialect: Dialect, keys: list[str] | None) -> None:
        c = statement.compile(dialect=dialect, column_keys=keys)
        self.sql = c.string
        self.positional = bool(c.positional)
        self.width = len(keys) if keys is not None else None
        self.returns_rows = isinstance(statement, sa.Select)
        names = c.positiontup if self.positional else list(c.binds)
        if names is None:
            raise TypeError("a positional statement without its parameters' order")
        # (name, the type's bind processor, whether it must be given, else its value)
        self.params: list[tuple[str, Callable[[Any], Any] | None, bool, Any]] = []
        for name in names:
            bind = c.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.params.append((name, process, bind.required or keys is not None, bind.value))
        self.names = [c.escaped_bind_names.get(n, n) for n in names]

    def args(self, values: Mapping[str, Any]) -> Any:
        if self.width is not None and len(values) != self.width:
            raise TypeError(
                f"expected the columns {[p[0] for p in self.params]}, got {list(values)}"
            )
        out = []
        for name, process, required, default in self.params:
            value = values[name] if required else values.get(name, default)
            out.append(process(value) if process is not None else value)
        return tuple(out) if self.positional else dict(zip(self.names, out, strict=True))

    def run(self, conn: Connection, args: Any, many: bool) -> tuple[Any, ...] | None:
        raw = conn.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            _tell_listeners(conn, cursor, self.sql, args, many)
            if many:
                cursor.executemany(self.sql, args)
                return None
            cursor.execute(self.sql, args)
            return tuple(cursor.fetchone() or ()) or None if self.returns_rows else None
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, self.sql, args, exc) from exc
        finally:
            cursor.close()


def _wrapped(conn: Connection, sql: str, args: Any, exc: Exception) -> sa.exc.StatementError:
    """The driver's error as SQLAlchemy raises it (IntegrityError, OperationalError...)."""
    return sa.exc.DBAPIError.instance(
        sql, args, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
    )


def _tell_listeners(conn: Connection, cursor: Any, sql: str, args: Any, many: bool) -> None:
    if conn.dispatch.before_cursor_execute:
        conn.dispatch.before_cursor_execute(conn, cursor, sql, args, None, many)


def send_held(conn: Connection) -> None:
    """Send the statements held on this connection, in one pipeline (PostgreSQL)."""
    held = conn.info.pop(_HELD, None)
    if not held:
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        with raw.pipeline(), raw.cursor() as cursor:
            for sql, args, many in held:
                _tell_listeners(conn, cursor, sql, args, many)
                if many:
                    cursor.executemany(sql, args)
                else:
                    cursor.execute(sql, args)
    except conn.dialect.loaded_dbapi.Error as exc:
        # the pipeline's error does not say which of them failed: all are named
        sent = ";\n".join(sql for sql, _, _ in held)
        raise _wrapped(conn, f"one of the statements sent together:\n{sent}", None, exc) from exc


def hold_statements(engine: Engine) -> None:
    """Wire an engine (PostgreSQL) so held statements go out before anything else runs on
    their connection or it commits, and are dropped when it rolls back."""

    @sa.event.listens_for(engine, "before_execute")
    def _before_execute(conn: Connection, *_: Any) -> None:
        if conn.info.get(_HELD):
            send_held(conn)

    @sa.event.listens_for(engine, "commit")
    def _commit(conn: Connection) -> None:
        send_held(conn)

    @sa.event.listens_for(engine, "rollback")
    def _rollback(conn: Connection) -> None:
        conn.info.pop(_HELD, None)

    @sa.event.listens_for(engine, "checkout")
    def _checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
        record.info.pop(_HELD, None)  # whatever a closed connection left is not sent
