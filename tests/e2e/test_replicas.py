"""Many processes, one database: replicas behave as one service; a crashed worker loses
nothing and fires nothing twice."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from httpx_sse import connect_sse

from signoff.adapters.db import tables as t
from signoff.bootstrap import build
from signoff.domain.actions import Action
from signoff.services import requests as use_cases
from signoff.services.views import due_queue, verify_audit

from ..conftest import make_settings
from .conftest import SIGNOFF, auth, base_env, in_process_tokens, start_servers, stop


@pytest.fixture(scope="module")
def replicas(module_pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Two servers and a worker on one PostgreSQL database of the module's own, shared by
    its tests (each works on requests of its own)."""
    data_dir = tmp_path_factory.mktemp("replicas")
    env = base_env(module_pg_database, data_dir)
    # tokens first: that makes the signing key before the servers start side by side
    tokens = in_process_tokens(module_pg_database, data_dir, ("frank", "bob", "carol"))
    procs = []
    try:
        (a, url_a), (b, url_b) = start_servers(env, data_dir, ("a", "b"))
        procs += [a, b]
        worker = subprocess.Popen(
            [*SIGNOFF, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        procs.append(worker)
        yield {"a": url_a, "b": url_b, "tokens": tokens, "db": module_pg_database}
    finally:
        stop(procs)


def test_a_vote_on_replica_b_reaches_a_client_waiting_on_replica_a(replicas) -> None:
    tokens = replicas["tokens"]
    body = {
        "action": {
            "type": "sql.execute",
            "target": "pg/prod",
            "params": {"sql": "UPDATE t SET x = 1"},
        },
        "reason": "r",
        "ticket": "OPS-1",
    }
    rid = httpx.post(
        f"{replicas['a']}/v1/requests", json=body, headers=auth(tokens, "frank")
    ).json()["id"]
    # The stream on A sleeps on its event bus (no polling): B's votes can only reach it
    # through PostgreSQL NOTIFY, so receiving them at all is the proof.
    seen: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=replicas["a"], timeout=httpx.Timeout(10, read=20)) as c,
            connect_sse(
                c, "GET", f"/v1/requests/{rid}/events", headers=auth(tokens, "frank")
            ) as src,
        ):
            for sse in src.iter_sse():
                if not sse.data:
                    continue
                seen.append(sse.event)
                ready.set()
                if sse.event == "grant.issued":
                    return

    th = threading.Thread(target=listen)
    th.start()
    assert ready.wait(10)
    for voter in ("bob", "carol"):
        resp = httpx.post(
            f"{replicas['b']}/v1/requests/{rid}/votes",
            json={"decision": "approve"},
            headers=auth(tokens, voter),
        )
        assert resp.status_code == 200, resp.text
    th.join(10)
    assert seen == [
        "request.submitted",
        "vote.cast",
        "vote.cast",
        "request.approved",
        "grant.issued",
    ]


def test_a_single_use_grant_redeemed_through_both_replicas_succeeds_once(replicas) -> None:
    tokens = replicas["tokens"]
    action = {"type": "sql.execute", "target": "pg/x", "params": {"sql": "select 1"}}
    grant = httpx.post(
        f"{replicas['a']}/v1/requests", json={"action": action}, headers=auth(tokens, "frank")
    ).json()["grant"]["token"]

    async def storm() -> list[int]:
        async with httpx.AsyncClient(timeout=60, headers=auth(tokens, "frank")) as c:
            calls = [
                c.post(
                    f"{replicas['a' if i % 2 else 'b']}/v1/grants/redeem",
                    json={"token": grant, "action": action},
                )
                for i in range(60)
            ]
            return [r.status_code for r in await asyncio.gather(*calls)]

    codes = asyncio.run(storm())
    assert codes.count(200) == 1 and codes.count(403) == 59


def denials(engine: sa.Engine, ids: list[str]) -> dict[str, int]:
    """How many request.denied audit events each of these requests has."""
    a = t.audit_events
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(a.c.request_id, sa.func.count())
            .where(a.c.type == "request.denied", a.c.request_id.in_(ids))
            .group_by(a.c.request_id)
        ).all()
    return {r[0]: int(r[1]) for r in rows}


def older_transactions(engine: sa.Engine, than: object) -> int:
    """How many other sessions on this database are in a transaction begun before ``than``."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND xact_start < :than"
                ),
                {"than": than},
            ).scalar_one()
        )


def test_each_deadline_fires_once_across_replicas_and_a_worker(replicas) -> None:
    tokens = replicas["tokens"]
    ids = []
    for i in range(30):
        r = httpx.post(
            f"{replicas['a' if i % 2 else 'b']}/v1/requests",
            json={"action": {"type": "quick.flag", "target": f"f{i}"}},
            headers=auth(tokens, "frank"),
        )
        ids.append(r.json()["id"])
    engine = sa.create_engine(replicas["db"])
    try:
        deadline = time.monotonic() + 20
        while len(denials(engine, ids)) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Every one has fired; a second firing could only come from a sweep whose
        # transaction was already open (one that starts now sees them all decided). Wait
        # until every such transaction has ended, then count.
        with engine.connect() as conn:
            seen_all = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
        while older_transactions(engine, seen_all) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not older_transactions(engine, seen_all)
        denied = denials(engine, ids)
    finally:
        engine.dispose()
    assert set(denied) == set(ids)
    assert set(denied.values()) == {1}


@pytest.mark.timeout(300)  # five worker starts and 600 requests: near 120 s on a loaded machine
def test_killing_the_worker_mid_sweep_loses_nothing_and_fires_nothing_twice(
    database_url: str, tmp_path: Path
) -> None:
    app = build(make_settings(database_url, tmp_path))
    svc = app.services
    frank = svc.directory.user("frank")
    ids = [
        use_cases.submit_request(svc, frank, Action("quick.flag", f"f{i}", {}), "", None, {}).id
        for i in range(600)
    ]
    deadline = time.monotonic() + 10
    while due_queue(svc)[0] < len(ids):  # one second after its submission, each is due
        assert time.monotonic() < deadline, due_queue(svc)
        time.sleep(0.05)
    env = {**base_env(database_url, tmp_path), "SIGNOFF_WORKER_BATCH": "5"}
    rng = random.Random(7)

    def done() -> int:
        with app.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(t.requests)
                    .where(t.requests.c.status == "denied")
                ).scalar_one()
            )

    interrupted = []
    for _ in range(4):
        before = done()
        if before == len(ids):
            break
        worker = subprocess.Popen(
            [*SIGNOFF, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while done() == before and time.monotonic() < deadline:
            time.sleep(0.01)  # wait until the sweep is under way...
        time.sleep(rng.uniform(0.0, 0.15))  # ...then kill it somewhere in the middle
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        interrupted.append(done())
    # at least one kill landed with work done and work left
    assert any(0 < n < len(ids) for n in interrupted), interrupted
    finished = subprocess.run(
        [*SIGNOFF, "worker", "--once"], env=env, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    counts = denials(app.engine, ids)
    with app.engine.connect() as conn:
        statuses = set(
            conn.execute(sa.select(t.requests.c.status).where(t.requests.c.id.in_(ids))).scalars()
        )
    assert statuses == {"denied"}
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    assert verify_audit(svc).ok
    app.close()
