"""Every query on the request path is served by an index, on both databases: the cost
of a request, a vote, a list page, a sweep or a delivery must not grow with the number
of requests, audit events or outbox rows stored.

The statements are captured as the use cases really run them, then explained: SQLite's
``EXPLAIN QUERY PLAN`` must not ``SCAN`` a table that grows, and PostgreSQL's plan (with
sequential scans priced out, so an index is taken whenever one can serve) must hold no
``Seq Scan`` on one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from signoff.adapters.db import tables
from signoff.domain.actions import Action
from signoff.domain.requests import Decision
from signoff.services import auth, views
from signoff.services import requests as use_cases
from signoff.services.history import StoredHistory
from signoff.services.ports import FixedClock
from signoff.services.scheduler import fire_due

from ..conftest import fixed_app

GROWING = {
    "requests",
    "audit_events",
    "outbox",
    "votes",
    "grants",
    "request_approvers",
    "executions",
    "used_links",
    "api_tokens",
    "slack_messages",
    "flow_events",
    "history_tallies",
    "github_deliveries",
}
WRITE = Action("sql.execute", "pg/prod", {"sql": "UPDATE t SET x = 1 WHERE id = 1"})
READ = Action("sql.execute", "pg/x", {"sql": "select 1"})


def capture(engine: sa.Engine) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if not executemany and statement.lstrip().upper().startswith(
            ("SELECT", "UPDATE", "DELETE", "WITH")
        ):
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    return seen


def explain(engine: sa.Engine, statement: str, parameters: Any) -> list[str]:
    """The plan's lines that read a growing table without an index."""
    bad = []
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            for row in rows:
                detail = row[-1]
                words = detail.split()
                if words[:1] == ["SCAN"] and words[1] in GROWING and "INDEX" not in detail:
                    bad.append(detail)
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()
            nodes = [plan[0]["Plan"]] if isinstance(plan, list) else [json.loads(plan)[0]["Plan"]]
            while nodes:
                node = nodes.pop()
                if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in GROWING:
                    bad.append(f"Seq Scan on {node['Relation Name']}")
                nodes += node.get("Plans", [])
            conn.rollback()
    return bad


def scans(engine: sa.Engine, statements: Any) -> dict[str, list[str]]:
    """Each statement (by its FROM onwards) whose plan reads a growing table without an
    index, with what it reads so."""
    problems = {}
    for statement, parameters in statements:
        bad = explain(engine, statement, parameters)
        if bad:
            text = " ".join(statement.split())
            problems[text[text.find(" FROM ") :][:400]] = bad
    return problems


def plan_text(engine: sa.Engine, statement: str, parameters: Any) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            return "\n".join(str(row[-1]) for row in rows)
        conn.exec_driver_sql("SET enable_seqscan = off")
        rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        conn.rollback()
        return "\n".join(str(row[0]) for row in rows)


def crowd(engine: sa.Engine, like: str, n: int) -> None:
    """``n`` pending requests of other requesters, copied from request ``like``, and the
    planner's statistics gathered."""
    with engine.begin() as conn:
        row = dict(
            conn.execute(sa.select(tables.requests).where(tables.requests.c.id == like))
            .mappings()
            .one()
        )
        rows = [
            {**row, "id": f"crowd-{i}", "requester": f"other-{i % 50}", "status": "pending"}
            for i in range(n)
        ]
        conn.execute(tables.requests.insert(), rows)
        conn.execute(sa.text("ANALYZE requests" if engine.dialect.name != "sqlite" else "ANALYZE"))


def test_the_request_path_reads_through_indexes(database_url: str, tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    app = fixed_app(database_url, tmp_path, clock)
    try:
        svc = app.services
        token = auth.create_token(svc, "dave")
        seen = capture(app.engine)
        dave, bob, carol, alice = (svc.directory.user(u) for u in ("dave", "bob", "carol", "alice"))
        auth.authenticate(svc, token)
        allowed = use_cases.submit_request(svc, dave, READ, "", None, {})
        use_cases.redeem_grant(svc, dave, svc.signer.issue(allowed), READ)
        r = use_cases.submit_request(svc, dave, WRITE, "fix", "OPS-1", {})
        use_cases.submit_or_fold(svc, dave, WRITE, "again", "OPS-1", {})
        other = use_cases.submit_request(
            svc,
            dave,
            Action("sql.execute", "pg/prod", {"sql": "DELETE FROM t WHERE id = 2"}),
            "x",
            "OPS-2",
            {},
        )
        use_cases.looked(svc, bob, r, "web")
        use_cases.cast_vote(svc, bob, r.id, Decision.APPROVE, "")
        use_cases.cast_vote(svc, carol, r.id, Decision.APPROVE, "")
        # what a condition on the requester's record reads (progressive trust)
        record = StoredHistory(svc, "dave", clock.now())
        record.count("approved", "sql.execute", "pg/*", clock.now() - timedelta(days=90))
        record.first_seen()
        use_cases.cancel_request(svc, dave, other.id, "")
        page = views.list_requests(svc, alice, limit=1)
        views.list_requests(svc, alice, limit=1, cursor=page.next_cursor)
        views.list_requests(svc, bob, awaiting="me")
        views.list_requests(svc, bob)
        views.list_requests(svc, bob, requester="dave", status="approved")
        views.request_history(svc, dave, r.id)
        views.request_history(svc, dave, r.id, after=3)
        views.due_queue(svc)
        clock.advance(hours=2)
        fire_due(svc)
        app.dispatch()
        statements = {(s, json.dumps(p, default=str)): (s, p) for s, p in seen}
        assert len(statements) > 15
        problems = scans(app.engine, statements.values())
        assert problems == {}, json.dumps(problems, indent=1)
        # The fold check must find the twin by requester AND action, not walk the
        # requester's whole history (it runs under SQLite's write lock), nor every pending
        # request. With a handful of rows the planner may take any index (a tie), so the
        # table first holds 2,000 pending requests of other people, with statistics.
        [fold] = {s for s, _ in statements.values() if "action_digest =" in s and "status =" in s}
        params = next(p for s, p in statements.values() if s == fold)
        crowd(app.engine, r.id, 2000)
        assert "ix_requests_fold" in plan_text(app.engine, fold, params)
    finally:
        app.close()


def test_a_requester_with_10_000_requests_is_still_served_by_indexes(
    database_url: str, tmp_path: Path
) -> None:
    """An agent or a pipeline asks all day: with 10,000 earlier requests of one requester
    (every state, many actions), the fold check still goes straight to the twin by
    requester and action (ix_requests_fold), and no read of the request path scans."""
    clock = FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    app = fixed_app(database_url, tmp_path, clock)
    try:
        svc = app.services
        dave, alice = svc.directory.user("dave"), svc.directory.user("alice")
        first = use_cases.submit_request(svc, dave, WRITE, "fix", "OPS-1", {})
        states = ["pending", "approved", "executed", "denied", "cancelled", "timed_out"]
        with app.engine.begin() as conn:
            row = dict(
                conn.execute(sa.select(tables.requests).where(tables.requests.c.id == first.id))
                .mappings()
                .one()
            )
            conn.execute(
                tables.requests.insert(),
                [
                    {
                        **row,
                        "id": f"mine-{i}",
                        "status": states[i % len(states)],
                        "action_digest": f"{i:064x}",
                        "created_at": row["created_at"] - timedelta(minutes=i),
                    }
                    for i in range(10_000)
                ],
            )
            conn.execute(
                sa.text("ANALYZE requests" if app.engine.dialect.name != "sqlite" else "ANALYZE")
            )
        seen = capture(app.engine)
        twin, folded = use_cases.submit_or_fold(svc, dave, WRITE, "again", "OPS-1", {})
        assert folded and twin.id == first.id
        allowed = use_cases.submit_request(svc, dave, READ, "", None, {})
        use_cases.redeem_grant(svc, dave, svc.signer.issue(allowed), READ)
        views.list_requests(svc, dave, requester="dave", limit=50)
        views.list_requests(svc, alice, requester="dave", status="pending", limit=50)
        bob = svc.directory.user("bob")  # not an admin: his own and those asked of him
        views.list_requests(svc, bob, requester="dave", limit=50)
        views.list_requests(svc, bob, limit=50)
        statements = {(s, json.dumps(p, default=str)): (s, p) for s, p in seen}
        [fold] = {s for s, _ in statements.values() if "action_digest =" in s and "status =" in s}
        params = next(p for s, p in statements.values() if s == fold)
        assert "ix_requests_fold" in plan_text(app.engine, fold, params)
        problems = scans(app.engine, statements.values())
        assert problems == {}, json.dumps(problems, indent=1)
    finally:
        app.close()
