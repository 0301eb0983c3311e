"""``postgres``: runs the approved SQL with psycopg 3 in one transaction, with a statement
timeout, a row limit, and READ ONLY when the grant says so.

Connections come from a small pool per target (psycopg_pool). Each connection is reset
with ``DISCARD ALL`` when it goes back, so nothing an executed statement sets for its
session (a role, a search_path, a prepared statement, a temporary table) reaches the
next execution.

An execution is four round trips on a pooled connection (kept in autocommit mode, so
psycopg sends no transaction commands of its own): ``BEGIN READ ONLY`` (or ``READ
WRITE``) with ``SET LOCAL statement_timeout`` in one simple query, the statement,
``COMMIT``, and the reset. A pooled connection that died meanwhile (the server
restarted, an idle timeout) fails at the first of these, before the statement is sent:
it is dropped and the execution starts again once on a new connection, so no separate
liveness check is paid on every checkout."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from signoff.adapters.executors.masking import Mask
from signoff.domain.actions import Action, canonical_json_floatless
from signoff.domain.errors import InvalidInput
from signoff.services.ports import ExecutionOutcome


def _json(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal | uuid.UUID | dt.date | dt.time | dt.timedelta):
        return str(value) if not isinstance(value, dt.date) else value.isoformat()
    if isinstance(value, bytes | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return str(value)


def _discard_all(conn: psycopg.Connection[Any]) -> None:
    conn.execute(b"DISCARD ALL")


class _Stale(Exception):
    """A pooled connection found dead before anything of an execution was sent."""


# Types psycopg loads as JSON-able Python values (bool, char, name, int8, int2, int4,
# text, oid, float4, float8, unknown, bpchar, varchar): their columns are kept as loaded.
PLAIN_TYPES = frozenset({16, 18, 19, 20, 21, 23, 25, 26, 700, 701, 705, 1042, 1043})
# Types whose values reach the output as no float (loaded as int, str, bool, or turned
# into strings by _json): bool, bytea, char, name, int8, int2, int4, text, oid, unknown,
# bpchar, varchar, date, time, timestamp, timestamptz, interval, numeric, uuid.
FLOATLESS_TYPES = frozenset(
    {16, 17, 18, 19, 20, 21, 23, 25, 26, 705, 1042, 1043, 1082, 1083, 1114, 1184, 1186}
    | {1700, 2950}
)
PLAIN = (int, float, bool, str, type(None))


def _json_rows(rows: list[tuple[Any, ...]], types: list[int]) -> list[list[Any]]:
    """Rows as JSON-able lists: copied as they are (in C) except in the columns of other
    types, converted value by value."""
    out = list(map(list, rows))
    convert = [i for i, oid in enumerate(types) if oid not in PLAIN_TYPES]
    for row in out if convert else ():
        for i in convert:
            v = row[i]
            if type(v) not in PLAIN:
                row[i] = _json(v)
    return out


class PostgresExecutor:
    kind = "postgres"

    def __init__(
        self,
        name: str,
        dsn: str,
        statement_timeout_ms: int,
        max_rows: int,
        mask: Mask,
        always_read_only: bool = False,
        pool_size: int = 4,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.statement_timeout_ms = statement_timeout_ms
        self.max_rows = max_rows
        self.mask = mask
        self.always_read_only = always_read_only
        self.connect_timeout_s = connect_timeout_s
        # the DSN is a secret: it lives in the pool only, never in a message or result
        self._pool = ConnectionPool(
            dsn,
            min_size=0,
            max_size=pool_size,
            open=False,
            reset=_discard_all,
            timeout=connect_timeout_s,
            # no server-side prepared statements: DISCARD ALL drops them behind psycopg's
            # back, and each execution is a one-off anyway; autocommit: the transaction
            # is begun and ended by run(), in fewer round trips than psycopg's own
            kwargs={
                "connect_timeout": max(1, int(connect_timeout_s)),
                "prepare_threshold": None,
                "autocommit": True,
            },
            name=f"target:{name}",
        )
        self._opened = False

    def close(self) -> None:
        if self._opened:
            self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresExecutor({self.name!r})"

    def check(self, action: Action) -> None:
        sql = action.params.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise InvalidInput(f"target {self.name} runs SQL: params.sql must be a statement")
        extra = set(action.params) - {"sql"}
        if extra:
            raise InvalidInput(f"target {self.name} takes only params.sql, not {sorted(extra)}")

    def _hidden(self, cur: psycopg.Cursor[Any], sql: str) -> list[bool] | None:
        """Which result columns to mask. By name, and by where each comes from: a column
        that is a masked table column under another name (``email AS e``: PostgreSQL
        reports its table and column, through subqueries too), and a computed column
        whose expression names a masked column (``upper(email)``; what an expression
        was made of is not reported, so it is read from the statement)."""
        description = cur.description or []
        result = cur.pgresult
        if not self.mask.columns or result is None:
            return None
        origin = [(result.ftable(i), result.ftablecol(i)) for i in range(len(description))]
        sources: dict[tuple[int, int], str] = {}
        pairs = sorted({(t, c) for t, c in origin if t})
        if pairs:
            found = cur.connection.execute(
                "SELECT a.attrelid::bigint, a.attnum::int, a.attname FROM pg_attribute a "
                "JOIN unnest(%s::bigint[], %s::int[]) AS p(rel, num) "
                "ON a.attrelid = p.rel::oid AND a.attnum = p.num",
                [[t for t, _ in pairs], [c for _, c in pairs]],
            ).fetchall()
            sources = {(int(o), int(n)): str(name) for o, n, name in found}
        computed = self.mask.computed_hidden(sql, len(description))
        hidden = []
        for d, (table, column), from_masked in zip(description, origin, computed, strict=True):
            source = sources.get((table, column)) if table else None
            hidden.append(
                d.name.lower() in self.mask.columns
                or (source is not None and source.lower() in self.mask.columns)
                or (source is None and from_masked)
            )
        return hidden

    def _statement(
        self, conn: psycopg.Connection[Any], sql: str
    ) -> tuple[dict[str, Any], str, bytes | None]:
        """Run the approved statement in the open transaction: its output, summary, and the
        output's canonical JSON when it was cheap to make here."""
        with conn.cursor() as cur:
            cur.execute(sql.encode())  # bytes: sent as written, no placeholders
            if cur.description is None:
                status = cur.statusmessage
                return {"rowcount": cur.rowcount, "status": status}, f"{status or 'done'}", None
            columns = [d.name for d in cur.description]
            types = [d.type_code for d in cur.description]
            got = cur.fetchmany(self.max_rows + 1)
            truncated = len(got) > self.max_rows
            rows = self.mask.rows(
                columns, _json_rows(got[: self.max_rows], types), self._hidden(cur, sql)
            )
        summary = f"{len(rows)} row(s)" + (" (truncated)" if truncated else "")
        output = {"columns": columns, "rows": rows, "truncated": truncated}
        # no float in any column: encoded here, fast (ExecutionOutcome.encoded)
        encoded = canonical_json_floatless(output) if FLOATLESS_TYPES.issuperset(types) else None
        return output, summary, encoded

    def _transaction(self, begin: bytes, sql: str) -> tuple[dict[str, Any], str, bytes | None]:
        """Begin, run the statement, commit, on a pooled connection; once more on a new
        connection if the pooled one turns out dead at ``begin`` (nothing was sent)."""
        for attempt in (1, 2):
            try:
                with self._pool.connection() as conn:
                    try:
                        conn.execute(begin)
                    except psycopg.OperationalError:
                        if attempt == 2 or not conn.broken:
                            raise
                        raise _Stale from None  # the pool drops it on the way back
                    done = self._statement(conn, sql)
                    conn.execute(b"COMMIT")
                    return done
            except _Stale:
                continue
        raise AssertionError("unreachable")

    def run(self, action: Action, read_only: bool) -> ExecutionOutcome:
        sql = str(action.params["sql"])
        read_only = read_only or self.always_read_only
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True
        begin = (
            b"BEGIN READ ONLY" if read_only else b"BEGIN READ WRITE"
        ) + b"; SET LOCAL statement_timeout = %d" % self.statement_timeout_ms
        try:
            output, summary, encoded = self._transaction(begin, sql)
        except PoolTimeout:
            return ExecutionOutcome(
                False,
                f"not run: could not connect to target {self.name} within "
                f"{self.connect_timeout_s:g} s",
                {},
                ran=False,
            )
        except psycopg.errors.QueryCanceled:
            return ExecutionOutcome(
                False, f"cancelled: the statement ran past {self.statement_timeout_ms} ms", {}
            )
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            return ExecutionOutcome(
                False, f"refused: the grant is read-only ({exc.diag.message_primary})", {}
            )
        except psycopg.Error as exc:
            state = getattr(exc, "sqlstate", None)
            primary = getattr(getattr(exc, "diag", None), "message_primary", None)
            text = primary or str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return ExecutionOutcome(False, f"error{f' {state}' if state else ''}: {text}", {})
        return ExecutionOutcome(True, summary, output, encoded=encoded)
