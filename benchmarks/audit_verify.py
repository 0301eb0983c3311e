"""Verifying the audit chain (issue 16): events a second, and memory, over a long log.

    uv run python benchmarks/audit_verify.py                     # SQLite, 1,000,000 events
    uv run python benchmarks/audit_verify.py --events 200000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

The events are written straight into a database of the benchmark's own (a temporary
SQLite file, or ``signoff_bench_audit`` on the PostgreSQL server, made anew and dropped
at the end): a real chain (``chain_next``) of vote, request and grant events over 50,000
requests, inserted in bulk (COPY on PostgreSQL), not through a million use cases.

Figures, each next to a baseline measured in the same run:

(a) ``views.verify_audit`` (what ``signoff audit verify`` runs for the chain), in events
    a second, against a bare ``hashlib.sha256(...).hexdigest()`` loop over the same
    bytes (a sample of 100,000 events' hash inputs, held in memory): the floor of any
    verification in Python;
(b) ``signoff audit verify`` as a process: wall time and peak RSS, against the same
    command over the same database before it was filled (memory that does not grow with
    the log is flat);
(c) the same with one event altered in the middle: it must be found, at its seq.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from signoff.adapters.db import tables as t  # noqa: E402
from signoff.adapters.db.engine import create_db_engine, upgrade  # noqa: E402
from signoff.domain.actions import canonical_json  # noqa: E402
from signoff.domain.audit import GENESIS_HASH, AuditEvent, chain_next  # noqa: E402

NAME = "signoff_bench_audit"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KINDS = [
    (
        "request.created",
        lambda i: {
            "action": {
                "type": "db.query",
                "target": f"prod/db-{i % 7}",
                "params": {"sql": f"DELETE FROM jobs WHERE id = {i}"},
            },
            "digest": f"{i:064x}",
            "policy": "prod-writes",
            "labels": {},
        },
    ),
    (
        "vote.cast",
        lambda i: {
            "decision": "approve",
            "comment": "looks fine to me",
            "stage": 0,
            "channel": "web",
        },
    ),
    ("request.approved", lambda i: {"from": "pending", "to": "approved"}),
    (
        "grant.issued",
        lambda i: {
            "grant_id": f"g-{i:08d}",
            "uses": 1,
            "expires_at": "2026-01-02T00:00:00.000000Z",
        },
    ),
]


def chain(n: int) -> Iterator[AuditEvent]:
    seq, prev = 0, GENESIS_HASH
    for i in range(n):
        kind, payload = KINDS[i % len(KINDS)]
        ev = chain_next(
            seq,
            prev,
            T0 + timedelta(milliseconds=37 * i),
            f"user{i % 20}",
            kind,
            f"{i // 20 % 50_000:08x}-0000-4000-8000-000000000000",
            payload(i),
        )
        seq, prev = ev.seq, ev.hash
        yield ev


def fresh_database(url: str) -> str:
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {NAME}"))
    admin.dispose()
    return sa.make_url(url).set(database=NAME).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)"))
    admin.dispose()


def fill(engine: sa.Engine, n: int) -> tuple[int, str]:
    """Write a chain of ``n`` events in bulk; returns the head it ends at."""
    head = (0, GENESIS_HASH)
    columns = ("seq", "at", "actor", "type", "request_id", "payload", "prev_hash", "hash")
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cur.copy(f"COPY audit_events ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for ev in chain(n):
                    copy.write_row(tuple(getattr(ev, c) for c in columns))
                    head = (ev.seq, ev.hash)
        else:
            cur.execute("PRAGMA synchronous=OFF")
            cur.execute("BEGIN")
            batch: list[tuple[object, ...]] = []
            sql = f"INSERT INTO audit_events ({', '.join(columns)}) VALUES (?,?,?,?,?,?,?,?)"
            for ev in chain(n):
                batch.append(tuple(getattr(ev, c) for c in columns))
                head = (ev.seq, ev.hash)
                if len(batch) == 10_000:
                    cur.executemany(sql, batch)
                    batch.clear()
            cur.executemany(sql, batch)
        cur.execute(
            "UPDATE audit_head SET seq = %s, hash = %s"
            if engine.dialect.name == "postgresql"
            else "UPDATE audit_head SET seq = ?, hash = ?",
            head,
        )
        raw.commit()
        if engine.dialect.name == "postgresql":
            cur.execute("ANALYZE audit_events")
            raw.commit()
    finally:
        raw.close()
    return head


def hash_inputs(sample: int) -> list[bytes]:
    """The bytes each of the first ``sample`` events' hash is computed over."""
    return [
        canonical_json([e.seq, e.at, e.actor, e.type, e.request_id, e.payload, e.prev_hash])
        for e in chain(sample)
    ]


def hash_floor(inputs: list[bytes]) -> float:
    """Events a second of a bare sha256 loop over the hash inputs (CPU time)."""
    sha256 = hashlib.sha256
    start = time.process_time()
    for data in inputs:
        sha256(data).hexdigest()
    return len(inputs) / (time.process_time() - start)


def verify_in_process(url: str, data_dir: str) -> tuple[float, float, object]:
    """``views.verify_audit`` once: wall and CPU seconds (this process's: on PostgreSQL the
    server's share is in the wall time only), and the report."""
    from signoff.bootstrap import build
    from signoff.config import Settings
    from signoff.services.views import verify_audit

    app = build(Settings(database_url=url, data_dir=Path(data_dir), channels="log"))
    try:
        cpu, start = time.process_time(), time.perf_counter()
        report = verify_audit(app.services)
        return time.perf_counter() - start, time.process_time() - cpu, report
    finally:
        app.close()


# The command, reporting its own peak RSS at exit (a forked child's ru_maxrss would count
# this process's memory before the exec).
PEAK = """
import atexit, os, sys
def peak():
    with open("/proc/self/status") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM"))
    with open(os.environ["PEAK_FILE"], "w") as out:
        out.write(kb)
atexit.register(peak)
sys.argv[0] = "signoff"
from signoff.entrypoints.cli.main import main
main()
"""


def verify_command(url: str, data_dir: str) -> tuple[float, float, int, str]:
    """``signoff audit verify`` as a process: wall seconds, peak RSS in MiB, exit code and
    its first line."""
    peak_file = Path(data_dir) / "peak"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    env |= {"SIGNOFF_DATABASE_URL": url, "SIGNOFF_DATA_DIR": data_dir}
    env["PEAK_FILE"] = str(peak_file)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK, "audit", "verify"], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    said = (done.stdout or done.stderr).strip().splitlines()
    return wall, int(peak_file.read_text()) / 1024, done.returncode, said[0] if said else ""


def tamper(engine: sa.Engine, seq: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            t.audit_events.update().where(t.audit_events.c.seq == seq).values(actor="mallory")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="", help="a PostgreSQL server (any db)")
    parser.add_argument("--sample", type=int, default=100_000, help="baseline's events")
    parser.add_argument("--rounds", type=int, default=3, help="verifications, interleaved")
    args = parser.parse_args()
    n = args.events
    with tempfile.TemporaryDirectory() as tmp:
        server = args.database_url
        url = fresh_database(server) if server else f"sqlite:///{tmp}/bench.db"
        try:
            engine = create_db_engine(url, 2)
            upgrade(engine)
            e_wall, e_rss, _, _ = verify_command(url, tmp)  # before it is filled
            start = time.perf_counter()
            fill(engine, n)
            took = time.perf_counter() - start
            print(f"{engine.dialect.name}: {n:,} events written in {took:.1f} s")

            # (a) rounds of baseline then verification, interleaved (the machine is shared):
            # the best of each, as events a second
            inputs = hash_inputs(min(args.sample, n))
            floors, walls, cpus = [], [], []
            for _ in range(args.rounds):
                floors.append(hash_floor(inputs))
                wall, cpu, report = verify_in_process(url, tmp)
                assert getattr(report, "ok", False), report
                walls.append(wall)
                cpus.append(cpu)
            floor = max(floors)
            by_wall, by_cpu = n / min(walls), n / min(cpus)
            print(f"(a) best of {args.rounds} rounds, events/s")
            print(f"    baseline: bare sha256 over the same bytes (CPU)  {floor:12,.0f}")
            print(
                f"    verify_audit, wall time                          {by_wall:12,.0f}"
                f"  ({min(walls):.2f} s; ratio to the baseline {by_wall / floor:.2f})"
            )
            print(
                f"    verify_audit, this process's CPU time            {by_cpu:12,.0f}"
                f"  ({min(cpus):.2f} s; ratio {by_cpu / floor:.2f})"
            )

            wall, rss, code, said = verify_command(url, tmp)
            print(f"(b) signoff audit verify, empty log: {e_wall:.2f} s, peak RSS {e_rss:.0f} MiB")
            print(
                f"    signoff audit verify, {n:,} events: {wall:.2f} s, "
                f"peak RSS {rss:.0f} MiB (ratio {rss / e_rss:.2f}); exit {code}: {said}"
            )

            middle = n // 2 + 1
            tamper(engine, middle)
            wall, _, report = verify_in_process(url, tmp)
            found = getattr(report, "broken_at", None)
            print(
                f"(c) event {middle:,} altered: found at {found} in {wall:.2f} s "
                f"({'right' if found == middle else 'WRONG'})"
            )
            engine.dispose()
        finally:
            if server:
                drop_database(server)


if __name__ == "__main__":
    main()
