"""Analytics benchmarks (issue 14): each figure next to a baseline measured in the same run.

    uv run python benchmarks/analytics.py                       # SQLite, 100,000 requests
    uv run python benchmarks/analytics.py --requests 1000000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

(a) the 30-day flow report (figures and findings) over a database holding N requests
    spread over a year, against one GROUP BY count of the same window (the database's
    floor for reading it);
(b) policy replay of a 500-policy candidate against the current 500-policy set over the
    stored asks of a window, in asks a second, against judging the same asks held in
    memory with both sets (the evaluation's floor);
(c) policy evaluation with a history condition (history.approved, read from the
    requester's per-day record) against the same set without it (p50).

The history is written with one INSERT ... SELECT per table (a recursive CTE), so a
million requests take seconds, not the hours of a million use cases.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from signoff.adapters.policy_files import load_policy_set  # noqa: E402
from signoff.bootstrap import App, build  # noqa: E402
from signoff.config import EXAMPLES, Settings  # noqa: E402
from signoff.domain.actions import Action  # noqa: E402
from signoff.domain.identity import User  # noqa: E402
from signoff.domain.policy import EvaluationInput, PolicySet  # noqa: E402
from signoff.services import analytics, policy_replay  # noqa: E402
from signoff.services.history import StoredHistory  # noqa: E402
from signoff.services.ports import FixedClock  # noqa: E402

NOW = datetime(2026, 12, 1, tzinfo=UTC)
YEAR = 365 * 24 * 3600


def policies(folder: Path, n: int, history: bool = False, variant: int = 0) -> None:
    """``n`` policies over 50 types and 7 target prefixes; ``variant`` changes every
    tenth condition (a candidate that differs); ``history`` puts a record condition on
    the policy each evaluation below reaches."""
    lines = ["default: {outcome: deny}", "policies:"]
    for i in range(n):
        bound = (i + variant * (i % 10 == 0)) % 5
        cond = f'size(action.params) > {bound} && requester.name != "x{i}"'
        if history and i == n - 1:
            cond = 'history.approved("t49.run", "env-6/*", "90d") >= 3'
        lines += [
            f"  - name: p{i}",
            "    match:",
            f"      type: t{i % 50}.run",
            f'      target: "env-{i % 7}/*"',
            f"      condition: '{cond}'",
            "    outcome: " + ("review" if (i + variant * (i % 10 == 0)) % 3 == 0 else "allow"),
        ]
        if (i + variant * (i % 10 == 0)) % 3 == 0:
            lines += ["    review:", "      stages:", "        - {approvers: {users: [bob]}}"]
    (folder / "p.yaml").write_text("\n".join(lines) + "\n")


def load(n: int, directory: Any, history: bool = False, variant: int = 0) -> PolicySet:
    with tempfile.TemporaryDirectory() as tmp:
        policies(Path(tmp), n, history, variant)
        return load_policy_set(tmp, directory)


def fill(app: App, n: int) -> None:
    """N requests over the year before NOW: 40% allowed, 10% denied by policy, 40%
    reviewed and decided (an approver asked, told, looking, voting), 10% timed out; one
    requester in 50 (r0..r49), twenty approvers (a0..a19)."""
    engine = app.engine
    pg = engine.dialect.name == "postgresql"
    seq = (
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :n) "
        if not pg
        else ""
    )
    source = "seq" if not pg else "generate_series(1, :n) AS seq(n)"
    at = (
        "datetime('2026-12-01', '-' || ((n * 7919) % {year}) || ' seconds', '+{plus} seconds')"
        if not pg
        else "timestamptz '2026-12-01 00:00:00+00'"
        " - ((n::bigint * 7919) % {year}) * interval '1 second' + interval '{plus} seconds'"
    )

    def when(plus: int = 0) -> str:
        return at.format(year=YEAR, plus=plus)

    status = (
        "CASE WHEN n % 10 < 4 THEN 'approved' WHEN n % 10 = 4 THEN 'denied' "
        "WHEN n % 10 = 9 THEN 'timed_out' WHEN n % 10 = 8 THEN 'denied' ELSE 'approved' END"
    )
    cast = "" if not pg else "::json"

    def js(text: str) -> str:
        return f"'{text}'{cast}"

    params, empty, nothing = js('{"a": 1, "b": 2}'), js("{}"), js("[]")
    snapshot = js('{"groups": [], "admin": false, "claims": {}}')
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"{seq}INSERT INTO requests (id, status, requester, action_type, action_target,"
                " action_params, action_digest, reason, ticket, context, policy_name,"
                " policy_set_digest, stages, current_stage, grant_ttl_seconds, grant_uses,"
                " read_only, executors, redeemers, viewers, created_at, decided_at, version,"
                " on_timeout, escalation_level, reminders_sent, fold_count, notify,"
                " expiry_warned, requester_snapshot)"
                f" SELECT 'r' || n, {status}, 'u' || (n % 50), 't' || (n % 50) || '.run',"
                f" 'env-' || (n % 7) || '/x', {params},"
                f" 'd' || n, '', NULL, {empty}, 'p' || (n % 500), 'digest', {nothing},"
                f" 0, 900, 1, false, {nothing}, {nothing},"
                f" {nothing}, {when()}, {when(120)}, 1, 'timed_out', 0, 0, 0,"
                f" {nothing}, false, {snapshot}"
                f" FROM {source}"
            ),
            {"n": n},
        )
        reviewed = "n % 10 >= 5"
        conn.execute(
            sa.text(
                f"{seq}INSERT INTO request_approvers (request_id, stage, person)"
                f" SELECT 'r' || n, 0, 'a' || (n % 20) FROM {source} WHERE {reviewed}"
            ),
            {"n": n},
        )
        conn.execute(
            sa.text(
                f"{seq}INSERT INTO votes (request_id, voter, decision, comment, stage, at)"
                f" SELECT 'r' || n, 'a' || (n % 20),"
                f" CASE WHEN n % 10 = 8 THEN 'deny' ELSE 'approve' END, '', 0, {when(60)}"
                f" FROM {source} WHERE {reviewed} AND n % 10 < 9"
            ),
            {"n": n},
        )
        for kind, plus, channel in (("notified", 1, "email"), ("seen", 30, "web")):
            conn.execute(
                sa.text(
                    f"{seq}INSERT INTO flow_events (request_id, person, kind, channel, at)"
                    f" SELECT 'r' || n, 'a' || (n % 20), '{kind}', '{channel}', {when(plus)}"
                    f" FROM {source} WHERE {reviewed}"
                ),
                {"n": n},
            )
        conn.execute(
            sa.text(
                f"{seq}INSERT INTO flow_events (request_id, person, kind, channel, at)"
                f" SELECT 'r' || n, 'a' || (n % 20), 'voted', 'slack', {when(60)}"
                f" FROM {source} WHERE {reviewed} AND n % 10 < 9"
            ),
            {"n": n},
        )
        conn.execute(sa.text("ANALYZE"))


def timed(fn: Any, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def bench_report(app: App) -> dict[str, float]:
    svc = app.services
    since = NOW - timedelta(days=30)
    r = app.engine.dialect.name
    t = sa.table("requests", sa.column("created_at"), sa.column("policy_name"))

    def floor() -> None:
        with app.engine.connect() as conn:
            conn.execute(
                sa.select(t.c.policy_name, sa.func.count())
                .where(t.c.created_at >= since, t.c.created_at < NOW)
                .group_by(t.c.policy_name)
            ).all()

    report = analytics.whole_report(svc, since, NOW)
    seconds = timed(lambda: analytics.whole_report(svc, since, NOW), 3)
    base = timed(floor, 3)
    return {
        "database": r,
        "window_requests": report.requests,
        "report_s": round(seconds, 3),
        "group_by_s": round(base, 4),
        "ratio": round(seconds / base, 1),
        "findings": len(report.findings),
    }


def bench_replay(app: App, days: int) -> dict[str, float]:
    svc = app.services
    alice = svc.directory.user("alice")
    current = load(500, svc.directory)
    candidate = load(500, svc.directory, variant=1)
    object.__setattr__(svc, "policies", current)
    since = NOW - timedelta(days=days)
    with svc.uow(write=False) as uow:
        asks = list(uow.flow_rows.asks(since, NOW))
    t0 = time.perf_counter()
    result = policy_replay.replay(svc, alice, candidate, since, NOW)
    replay_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for ask in asks:
        user = User(ask.requester, groups=frozenset())
        inp = EvaluationInput.of(ask.action, user, ask.created_at, ask.context, ask.ticket)
        current.evaluate(inp)
        candidate.evaluate(inp)
    floor_s = time.perf_counter() - t0
    return {
        "asks": result.requests,
        "changed": result.changed,
        "replay_asks_per_s": round(result.requests / replay_s),
        "evaluate_both_per_s": round(len(asks) / floor_s),
        "ratio": round(replay_s / floor_s, 2),
    }


def bench_history(app: App, rounds: int = 5000) -> dict[str, float]:
    svc = app.services
    plain = load(500, svc.directory)
    with_history = load(500, svc.directory, history=True)
    user = User("u49")
    action = Action("t49.run", "env-6/x", {"a": 1, "b": 2})
    now = NOW
    # the record the condition reads: u49's approvals of t49.run (filled above)
    with app.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO history_tallies (requester, action_type, day, action_target,"
                " outcome, n) SELECT requester, action_type, CAST(created_at AS DATE),"
                " action_target, 'approved', count(*) FROM requests"
                " WHERE requester = 'u49' AND status = 'approved'"
                " GROUP BY requester, action_type, CAST(created_at AS DATE), action_target"
            )
        )

    def sample(ps: PolicySet, history: bool, cached: bool = True) -> float:
        svc.history_cache.seconds = 2.0 if cached else 0.0
        samples = []
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            record = StoredHistory(svc, user.name, now) if history else None
            decision = ps.evaluate(EvaluationInput.of(action, user, now, {}, None, record))
            samples.append(time.perf_counter_ns() - t0)
        assert decision.error is None, decision.error
        return statistics.median(samples) / 1000

    without = sample(plain, False)
    with_ = sample(with_history, True)
    cold = sample(with_history, True, cached=False)
    return {
        "without_p50_us": round(without, 1),
        "with_history_p50_us": round(with_, 1),
        "ratio": round(with_ / without, 2),
        "read_every_time_p50_us": round(cold, 1),
        "read_every_time_ratio": round(cold / without, 2),
    }


def fresh_database(url: str, name: str = "signoff_bench_analytics", keep: bool = False) -> str:
    """A database of the benchmark's own on the same server, made anew (``keep``: the
    one an earlier run filled, when there is one)."""
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        there = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first()
        if not (keep and there):
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return str(sa.make_url(url).set(database=name).render_as_string(hide_password=False))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="reuse the filled database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        if url.startswith("postgresql"):
            url = fresh_database(url, keep=args.keep)
        # a database kept between runs (--keep) needs the same signing keys
        data_dir = Path(tempfile.gettempdir()) / "signoff-bench-analytics" if args.keep else tmp
        Path(data_dir).mkdir(exist_ok=True)
        settings = Settings(
            database_url=url,
            data_dir=Path(data_dir),
            policies_dir=EXAMPLES / "policies",
            users_file=EXAMPLES / "users.yaml",
        )
        app = build(settings, clock=FixedClock(NOW))
        try:
            t0 = time.perf_counter()
            with app.engine.connect() as conn:
                stored = conn.execute(sa.text("SELECT count(*) FROM requests")).scalar_one()
            if stored != args.requests:
                fill(app, args.requests)
            print(f"filled {args.requests:,} requests in {time.perf_counter() - t0:.1f} s")
            print("report (30 days):", bench_report(app))
            days = round(365 * min(1.0, 100_000 / args.requests))
            print(f"replay ({days} days, 500 policies):", bench_replay(app, days))
            print("history condition:", bench_history(app))
        finally:
            app.close()


if __name__ == "__main__":
    main()
