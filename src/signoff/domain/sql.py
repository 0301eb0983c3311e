"""What a SQL text does, read with a real SQL parser (sqlglot, PostgreSQL dialect), so a
policy can decide on it (``action.sql.kind``, ``action.sql.tables``,
``action.sql.unbounded_write``) and approvers see it.

Classification is conservative: a statement that writes anywhere (a data-modifying CTE
inside a SELECT included) is a write; anything the parser cannot read is ``unknown``,
which a policy should treat as dangerous.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlglot import exp

# sqlglot (its parser and dialects) is imported at the first classification, not with
# the domain: policies without SQL, the CLI and most tests never need it.


@dataclass(frozen=True)
class _Nodes:
    """The sqlglot expression classes the classification looks for."""

    writes: tuple[type[exp.Expr], ...]
    ddl: tuple[type[exp.Expr], ...]
    statements: tuple[type[exp.Expr], ...]
    truncate: tuple[type[exp.Expr], ...]


@functools.cache
def _nodes() -> _Nodes:
    from sqlglot import exp

    def present(*names: str) -> tuple[type[exp.Expr], ...]:
        return tuple(getattr(exp, name) for name in names if hasattr(exp, name))

    return _Nodes(
        writes=(exp.Insert, exp.Update, exp.Delete, exp.Merge),
        ddl=present("Create", "Drop", "Alter", "AlterTable", "TruncateTable", "Comment", "Grant"),
        statements=present(
            "Command", "Set", "Transaction", "Commit", "Rollback", "Copy", "Use", "Pragma"
        ),
        truncate=present("TruncateTable"),
    )


def _kind(statement: exp.Expr) -> str:
    from sqlglot import exp

    n = _nodes()
    if not isinstance(statement, (exp.Query, *n.writes, *n.ddl, *n.statements)):
        return "unknown"  # e.g. a bare expression, which the parser accepts and SQL does not
    if isinstance(statement, n.ddl):
        return "ddl"
    if isinstance(statement, n.writes) or any(statement.find_all(*n.writes)):
        return "write"
    if isinstance(statement, exp.Query):
        if statement.args.get("into") is not None:  # SELECT ... INTO creates a table
            return "ddl"
        return "read"
    return "other"  # SET, VACUUM, COPY, CALL, EXPLAIN, ...: a policy decides


def _unbounded(statement: exp.Expr) -> bool:
    """An UPDATE or DELETE without WHERE, or a TRUNCATE: every row of a table."""
    from sqlglot import exp

    truncate = _nodes().truncate
    if truncate and isinstance(statement, truncate):
        return True
    return any(
        node.args.get("where") is None for node in statement.find_all(exp.Update, exp.Delete)
    )


def _tables(statement: exp.Expr) -> set[str]:
    from sqlglot import exp

    ctes = {c.alias_or_name for c in statement.find_all(exp.CTE)}
    out = set()
    for t in statement.find_all(exp.Table):
        if not t.name or (not t.db and t.name in ctes):
            continue
        out.add(f"{t.db}.{t.name}" if t.db else t.name)
    return out


def classify(sql: str) -> dict[str, Any]:
    """See ``_classify``; a fresh copy of a cached answer (the same text is classified
    for the policy, for each message and for the audit trail)."""
    found = _classify(sql)
    return {**found, "kinds": list(found["kinds"]), "tables": list(found["tables"])}


@functools.lru_cache(maxsize=512)
def _classify(sql: str) -> dict[str, Any]:
    """``kind``: read | write | ddl | other | multiple | unknown; ``kinds`` per statement;
    ``tables`` (schema-qualified when written so; CTE names left out);
    ``unbounded_write``: an UPDATE or DELETE without WHERE, or a TRUNCATE;
    ``statements``: how many; ``error``: why it could not be read."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        statements = [s for s in sqlglot.parse(sql, read="postgres") if s is not None]
    except SqlglotError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {
            "kind": "unknown",
            "kinds": [],
            "tables": [],
            "unbounded_write": False,
            "statements": 0,
            "error": first[:300],
        }
    kinds = [_kind(s) for s in statements]
    if "unknown" in kinds:
        return {
            "kind": "unknown",
            "kinds": kinds,
            "tables": [],
            "unbounded_write": False,
            "statements": len(statements),
            "error": "not a SQL statement",
        }
    tables = sorted(set().union(*(_tables(s) for s in statements)))
    if not statements:
        kind = "unknown"
    elif len(statements) > 1:
        kind = "multiple"
    else:
        kind = kinds[0]
    return {
        "kind": kind,
        "kinds": kinds,
        "tables": tables,
        "unbounded_write": any(_unbounded(s) for s in statements),
        "statements": len(statements),
        "error": "" if statements else "no statement",
    }


def describe(c: dict[str, Any]) -> str:
    """One line for approvers."""
    if c["kind"] == "unknown":
        return f"SQL that could not be parsed ({c['error']})"
    parts = [f"{c['kind']}" + (f" ({', '.join(c['kinds'])})" if c["kind"] == "multiple" else "")]
    if c["tables"]:
        parts.append("tables " + ", ".join(c["tables"]))
    if c["unbounded_write"]:
        parts.append("UPDATE/DELETE WITHOUT WHERE")
    return "SQL: " + "; ".join(parts)


def analyse(params: dict[str, Any]) -> dict[str, Any]:
    """What Signoff reads from an action's parameters, merged into ``action`` for policy
    conditions and shown to approvers: ``sql`` when there is a SQL text in ``sql``, and
    ``command`` (``executable``, ``args``) when there is an ``argv`` list."""
    out: dict[str, Any] = {}
    text = params.get("sql")
    if isinstance(text, str):
        out["sql"] = classify(text)
    argv = params.get("argv")
    if isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv):
        out["command"] = {"executable": argv[0], "args": list(argv[1:])}
    return out
