"""What policies and approvers are told a SQL text does (sqlglot, PostgreSQL dialect)."""

from __future__ import annotations

import pytest

from signoff.domain.sql import classify, describe


@pytest.mark.parametrize(
    ("sql", "kind", "tables", "unbounded"),
    [
        ("SELECT * FROM users WHERE id = 1", "read", ["users"], False),
        (
            "select u.id from app.users u join orders o on o.uid = u.id",
            "read",
            ["app.users", "orders"],
            False,
        ),
        ("UPDATE accounts SET balance = 0 WHERE id = 1", "write", ["accounts"], False),
        ("UPDATE accounts SET balance = 0", "write", ["accounts"], True),
        ("DELETE FROM public.sessions", "write", ["public.sessions"], True),
        ("INSERT INTO audit SELECT * FROM staging", "write", ["audit", "staging"], False),
        ("WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone", "write", ["t"], True),
        ("DROP TABLE users", "ddl", ["users"], False),
        ("TRUNCATE sessions", "ddl", ["sessions"], True),
        ("SELECT * INTO copy FROM users", "ddl", ["copy", "users"], False),
        ("ALTER TABLE users ADD COLUMN x int", "ddl", ["users"], False),
        ("VACUUM", "other", [], False),
    ],
)
def test_kinds_tables_and_unbounded_writes(
    sql: str, kind: str, tables: list[str], unbounded: bool
) -> None:
    c = classify(sql)
    assert (c["kind"], c["tables"], c["unbounded_write"]) == (kind, tables, unbounded)


def test_several_statements_are_multiple_and_keep_each_kind() -> None:
    c = classify("SELECT 1; DELETE FROM t WHERE id = 2; DROP TABLE t")
    assert c["kind"] == "multiple" and c["kinds"] == ["read", "write", "ddl"]
    assert c["statements"] == 3
    assert describe(c) == "SQL: multiple (read, write, ddl); tables t"


def test_what_cannot_be_parsed_is_unknown_with_the_reason() -> None:
    c = classify("SELEC * FORM users")
    assert c["kind"] == "unknown" and c["error"]
    assert describe(c).startswith("SQL that could not be parsed")
    assert classify("   ")["kind"] == "unknown"


def test_the_description_flags_unbounded_writes() -> None:
    assert describe(classify("DELETE FROM sessions")) == (
        "SQL: write; tables sessions; UPDATE/DELETE WITHOUT WHERE"
    )
