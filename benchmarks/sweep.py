"""A deadline sweep must cost what is due, not what is stored (issue 3).

    uv run python benchmarks/sweep.py                     # SQLite
    uv run python benchmarks/sweep.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/signoff_bench

For each store size (10,000 and 1,000,000 requests, none of them due), 1,000 due
requests are added and one sweep fires all of them; the figure is the sweep's time with
1,000,000 stored over its time with 10,000 stored (the baseline, same run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from signoff.bootstrap import build  # noqa: E402
from signoff.config import Settings  # noqa: E402
from signoff.domain.actions import Action  # noqa: E402
from signoff.services import requests as use_cases  # noqa: E402
from signoff.services.ports import FixedClock  # noqa: E402
from signoff.services.scheduler import sweep  # noqa: E402

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
FILLER_COLUMNS = (
    "id, status, requester, action_type, action_target, action_params, action_digest, "
    "reason, context, policy_name, policy_set_digest, stages, current_stage, "
    "grant_ttl_seconds, grant_uses, created_at, version, on_timeout, escalation_level, "
    "reminders_sent"
)


def fill(engine: sa.Engine, count: int) -> None:
    """``count`` decided requests (nothing due), inserted in bulk by the database."""
    values = (
        "'denied', 'frank', 'deploy', 'prod/x', '{}', 'd', 'filler', '{}', 'default', 'p', "
        "'[]', 0, 900, 1, {now}, 0, 'timed_out', 0, 0"
    )
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    f"INSERT INTO requests ({FILLER_COLUMNS}) SELECT 'fill-' || g, "
                    + values.replace("{now}", "now()")
                    + " FROM generate_series(1, :n) AS g"
                ),
                {"n": count},
            )
        else:
            conn.execute(
                sa.text(
                    f"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < :n) "
                    f"INSERT INTO requests ({FILLER_COLUMNS}) SELECT 'fill-' || x, "
                    + values.replace("{now}", "'2026-11-22 08:00:00.000000'")
                    + " FROM g"
                ),
                {"n": count},
            )


def one_size(database_url: str | None, stored: int, due: int, rounds: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        if database_url:
            engine = sa.create_engine(database_url)
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        clock = FixedClock(T0)
        settings = Settings(data_dir=Path(tmp), database_url=database_url or "")
        app = build(settings, clock=clock)
        svc = app.services
        try:
            fill(app.engine, stored)
            if app.engine.dialect.name == "postgresql":
                with app.engine.begin() as conn:
                    conn.execute(sa.text("ANALYZE requests"))
            frank = svc.directory.user("dave")
            times = []
            for r in range(rounds):
                for i in range(due):
                    use_cases.submit_request(
                        svc, frank, Action("deploy", f"prod/r{r}-{i}", {}), "bench", None, {}
                    )
                clock.advance(minutes=25)  # past the example deploy policy's 20m timeout
                t0 = time.perf_counter()
                fired = sweep(svc, 100)
                times.append(time.perf_counter() - t0)
                assert fired == due, fired
                clock.current = clock.current + timedelta(seconds=1)
            return times
        finally:
            app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()
    small = one_size(args.database_url, 10_000, 1000, args.rounds)
    large = one_size(args.database_url, args.large, 1000, args.rounds)
    s, b = statistics.median(small), statistics.median(large)
    name = "postgresql" if args.database_url else "sqlite"
    print(
        f"{name}: sweep of 1,000 due requests: {s * 1000:.0f} ms with 10,000 stored, "
        f"{b * 1000:.0f} ms with {args.large:,} stored: ratio {b / s:.2f}"
    )


if __name__ == "__main__":
    main()
