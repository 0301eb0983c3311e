"""The web app's pages cost about what the JSON API costs for the same data (issue 12).

    uv run python benchmarks/web.py                       # SQLite
    uv run python benchmarks/web.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/signoff_bench

In one process (Starlette's test client, so the figure is the server's time, not the
network's): 1,000 pending requests await one approver. The inbox page (``GET /``) is
timed next to the JSON list of the same requests (``GET /v1/requests?awaiting=me``,
all five pages of 200),
and a request page with a 500-line diff next to ``GET /v1/requests/{id}``; rounds are
interleaved so both sides see the same machine. Prints p50/p99 and the ratios.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from signoff.bootstrap import build  # noqa: E402
from signoff.config import Settings  # noqa: E402
from signoff.domain.actions import Action  # noqa: E402
from signoff.entrypoints.api.app import create_app  # noqa: E402
from signoff.services import requests as use_cases  # noqa: E402
from signoff.services.auth import create_token  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
DIFF = "".join(f"-line {i} old\n+line {i} new\n" for i in range(250))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="")
    ap.add_argument("--pending", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.database_url:
            engine = sa.create_engine(args.database_url)
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        settings = Settings(
            data_dir=Path(tmp),
            database_url=args.database_url,
            policies_dir=FIXTURES / "policies",
            users_file=FIXTURES / "users.yaml",
            worker_in_server=False,
        )
        app = build(settings)
        svc = app.services
        dave = svc.directory.user("dave")
        for i in range(args.pending):
            sql = f"UPDATE plans SET tier = 'pro' WHERE id = {i}"
            ctx = {"risk": "high", "diff": DIFF} if i == 0 else {}
            r = use_cases.submit_request(
                svc, dave, Action("sql.execute", "pg/prod", {"sql": sql}), "upgrade", "OPS-1", ctx
            )
            if i == 0:
                first = r.id
        token = create_token(svc, "bob", "bench")
        client = TestClient(create_app(app))
        gc.freeze()  # as `signoff serve` does once the application is built
        link = app.signin_link("bob")
        client.get(link.split("127.0.0.1:8000", 1)[-1], follow_redirects=False)
        cookie = client.cookies
        api = {"Authorization": f"Bearer {token}"}
        # name: (path, headers, whether to follow the API's next_cursor to the end)
        pairs = {
            "inbox page (GET /)": ("/", {}, False),
            "JSON list (GET /v1/requests?awaiting=me, all pages)": (
                "/v1/requests?awaiting=me&status=pending&limit=200",
                api,
                True,
            ),
            "JSON first page (limit=100)": (
                "/v1/requests?awaiting=me&status=pending&limit=100",
                api,
                False,
            ),
            "request page, 500-line diff": (f"/requests/{first}", {}, False),
            "JSON request (GET /v1/requests/{id})": (f"/v1/requests/{first}", api, False),
        }
        times: dict[str, list[float]] = {k: [] for k in pairs}
        for _ in range(args.rounds):
            for name, (path, headers, all_pages) in pairs.items():
                client.cookies = cookie if path[:3] != "/v1" else None  # type: ignore[assignment]
                t0 = time.perf_counter()
                resp = client.get(path, headers=headers)
                while all_pages and resp.json().get("next_cursor"):  # the API pages by 200
                    cursor = resp.json()["next_cursor"]
                    resp = client.get(f"{path}&cursor={cursor}", headers=headers)
                times[name].append((time.perf_counter() - t0) * 1000)
                assert resp.status_code == 200, (name, resp.status_code, resp.text[:300])
                if name.startswith("inbox"):  # the 100 nearest deadlines, and the count of all
                    assert resp.text.count('<li class="card') == min(100, args.pending)
                    assert f"of {args.pending}, nearest deadline first" in resp.text
        db = "PostgreSQL" if args.database_url else "SQLite"
        print(f"web pages vs the JSON API, {args.pending} pending for one approver, {db}")
        for name, values in times.items():
            print(
                f"  {name:45s} p50 {statistics.median(values):7.1f} ms"
                f"   p99 {percentile(values, 0.99):7.1f} ms"
            )
        names = list(times)
        for page, base in ((names[0], names[1]), (names[0], names[2]), (names[3], names[4])):
            ratio = statistics.median(times[page]) / statistics.median(times[base])
            print(f"  {page} / {base}: {ratio:.2f}x (p50)")
        app.close()


if __name__ == "__main__":
    main()
