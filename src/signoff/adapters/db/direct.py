"""The request path's statements, run on SQLite's own cursor.

A request costs a handful of statements (its row, its approvers or grant, the audit
events and head, the outbox, the requester's tally). Through SQLAlchemy each execution
cost about 35 µs on SQLite, most of it SQLAlchemy's bookkeeping (cache keys, execution
context, result set-up), against 5 to 10 µs of SQLite's own work. Here each statement is
compiled once by SQLAlchemy for the dialect and its parameters are converted by the
column types' own bind processors, exactly as SQLAlchemy would, then handed to the
driver's cursor. Listeners of ``before_cursor_execute`` (the query-plan tests) still see
every statement. On other databases the same statements go through SQLAlchemy as usual:
there a statement's cost is the round trip to the server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect


class Direct:
    """One statement: built once, compiled once per dialect. ``columns``: an INSERT whose
    columns are the keys of the values it is first run with (every later run must give
    the same keys)."""

    def __init__(self, build: Callable[[], Any], columns: bool = False) -> None:
        self._build = build
        self._columns = columns
        self._statement: Any = None
        self._sqlite: _Compiled | None = None

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
        if conn.dialect.name != "sqlite":
            if many and not values:
                return None
            result = conn.execute(self.statement, values)
            return tuple(result.first() or ()) or None if result.returns_rows else None
        compiled = self._sqlite
        if compiled is None:
            first = values if isinstance(values, Mapping) else (values[0] if values else None)
            if first is None:
                return None
            keys = list(first) if self._columns else None
            compiled = self._sqlite = _Compiled(self.statement, conn.dialect, keys)
        return compiled.run(conn, values, many)


class _Compiled:
    def __init__(self, statement: Any, dialect: Dialect, keys: list[str] | None) -> None:
        c = statement.compile(dialect=dialect, column_keys=keys)
        if not c.positional or c.positiontup is None:
            raise TypeError("a direct statement needs a positional parameter style")
        self.sql = c.string
        self.width = len(keys) if keys is not None else None
        self.returns_rows = isinstance(statement, sa.Select)
        # (name, the type's bind processor, whether it must be given, else its value)
        self.params: list[tuple[str, Callable[[Any], Any] | None, bool, Any]] = []
        for name in c.positiontup:
            bind = c.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.params.append((name, process, bind.required or keys is not None, bind.value))

    def _args(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        if self.width is not None and len(values) != self.width:
            raise TypeError(
                f"expected the columns {[p[0] for p in self.params]}, got {list(values)}"
            )
        out = []
        for name, process, required, default in self.params:
            value = values[name] if required else values.get(name, default)
            out.append(process(value) if process is not None else value)
        return tuple(out)

    def run(self, conn: Connection, values: Any, many: bool) -> tuple[Any, ...] | None:
        args: Any = [self._args(v) for v in values] if many else self._args(values)
        if many and not args:
            return None
        raw = conn.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            if conn.dispatch.before_cursor_execute:
                conn.dispatch.before_cursor_execute(conn, cursor, self.sql, args, None, many)
            if many:
                cursor.executemany(self.sql, args)
                return None
            cursor.execute(self.sql, args)
            return cursor.fetchone() if self.returns_rows else None
        finally:
            cursor.close()
