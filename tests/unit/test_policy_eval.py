"""Policy evaluation: first match wins, explicit default, fast path equals explain."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from signoff.adapters.directory_file import load_directory
from signoff.adapters.policy_files import load_policy_set
from signoff.domain.actions import Action
from signoff.domain.policy import EvaluationInput

FIXTURES = Path(__file__).parent.parent / "fixtures"
DIRECTORY = load_directory(FIXTURES / "users.yaml")
POLICIES = load_policy_set(FIXTURES / "policies", DIRECTORY)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def decide(type_: str, target: str, params: dict | None = None, user: str = "frank"):
    inp = EvaluationInput(Action(type_, target, params or {}), DIRECTORY.user(user), NOW)
    return POLICIES.evaluate(inp), POLICIES.explain(inp)


def test_first_match_wins_and_condition_decides() -> None:
    fast, slow = decide("sql.execute", "pg/prod", {"sql": "  SELECT * FROM t"})
    assert fast.policy.name == slow.policy.name == "read-only-sql"
    assert fast.outcome.value == "allow"
    fast, slow = decide("sql.execute", "pg/prod", {"sql": "UPDATE t SET x = 1"})
    assert fast.policy.name == "prod-sql-write"
    assert [m.as_dict() for m in slow.misses] == [
        {
            "policy": "read-only-sql",
            "clause": "condition",
            "detail": 'condition is false: action.sql.kind == "read"',
        }
    ]


def test_explain_names_the_failed_clause_of_every_earlier_policy() -> None:
    _, slow = decide("secret.read", "vault/db-password")
    clauses = [(m.policy, m.clause) for m in slow.misses]
    assert clauses == [
        ("read-only-sql", "type"),
        ("prod-sql-write", "type"),
        ("deploy-two-groups", "type"),
    ]
    assert slow.policy.name == "staged-secret"


def test_default_outcome_when_nothing_matches() -> None:
    fast, slow = decide("unknown.thing", "x")
    assert fast.policy.name == "default" and fast.outcome.value == "deny"
    assert len(slow.misses) == len(POLICIES)


def test_condition_error_fails_closed() -> None:
    fast, slow = decide("sql.execute", "pg/prod", {"query": "SELECT 1"})  # no 'sql' key
    assert fast.outcome.value == "deny"
    assert fast.policy.name == "read-only-sql"
    assert fast.error is not None and "sql" in fast.error
    assert slow.outcome.value == "deny"


types = st.sampled_from(["sql.execute", "deploy", "secret.read", "http.call", "sql.drop", "x"])
targets = st.sampled_from(["pg/prod", "pg/dev", "prod/api", "staging/api", "vault/x"])
sqls = st.sampled_from(["select 1", "UPDATE t SET a=1", "  Select now()", "delete from t"])


@given(types, targets, sqls, st.sampled_from(["bob", "frank", "alice"]))
def test_indexed_evaluation_always_agrees_with_explain(t, target, sql, user) -> None:
    fast, slow = decide(t, target, {"sql": sql}, user)
    assert (fast.policy.name, fast.outcome) == (slow.policy.name, slow.outcome)


def test_grant_rule_comes_from_the_policy() -> None:
    p = POLICIES.by_name("read-only-sql")
    assert p is not None and p.grant.ttl.total_seconds() == 300 and p.grant.uses == 1


def test_extension_functions_work_in_conditions(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "default: {outcome: deny}\n"
        "policies:\n"
        "  - name: small-numbers\n"
        "    match:\n"
        "      condition: 'math.abs(action.params.n) < 10 && action.target.upperAscii() == \"X\"'\n"
        "    outcome: allow\n"
    )
    ps = load_policy_set(tmp_path, DIRECTORY)
    user = DIRECTORY.user("bob")
    small = EvaluationInput(Action("t", "x", {"n": -3}), user, NOW)
    large = EvaluationInput(Action("t", "x", {"n": -30}), user, NOW)
    assert ps.evaluate(small).outcome.value == "allow"
    assert ps.evaluate(large).outcome.value == "deny" and ps.evaluate(large).error is None
