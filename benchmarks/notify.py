"""Notifications (issue 4): how fast the first message leaves, and how many messages a
burst of identical requests costs each approver.

    uv run python benchmarks/notify.py [--database-url postgresql+psycopg://...]

(1) From sending a request (so an upper bound on "from its commit") to its first mail
    arriving at a real SMTP server (aiosmtpd) on loopback, p50/p99, through a
    `signoff serve` process with the email channel. Baseline: sending one similar mail
    straight to the same SMTP server with aiosmtplib, in the same run.
(2) 100 identical requests from one requester, at once: messages each approver gets.
(3) 100 distinct requests under a digest policy (`every: 5s`), at once: messages each
    approver gets, against 100 under the same policy without a digest.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import SignoffServer, free_port

WRITE = {"type": "sql.execute", "target": "postgres/prod-main"}
EXAMPLES = Path(__file__).resolve().parent.parent / "src" / "signoff" / "examples"
BENCH_POLICIES = """
policies:
  - name: bench-digest
    match: {type: bench.digest}
    outcome: review
    notify_mode: digest
    every: 5s
    review: {stages: [{approvers: {groups: [dba]}, quorum: 1, timeout: 1h}]}
  - name: bench-immediate
    match: {type: bench.immediate}
    outcome: review
    review: {stages: [{approvers: {groups: [dba]}, quorum: 1, timeout: 1h}]}
"""


class Inbox:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str, str]] = []  # (time, to, plain text)
        self.event = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        m = email.message_from_bytes(envelope.content)
        text = "".join(
            part.get_payload(decode=True).decode("utf-8", "replace")
            for part in m.walk()
            if part.get_content_type() == "text/plain"
        )
        self.arrivals.append((time.perf_counter(), str(m["To"]), text))
        self.event.set()
        return "250 OK"


def baseline(port: int, trials: int) -> list[float]:
    async def one() -> float:
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "a@example.com", "b@example.com", "baseline"
        m.set_content("x" * 800)
        t0 = time.perf_counter()
        await aiosmtplib.send(m, hostname="127.0.0.1", port=port)
        return time.perf_counter() - t0

    return [asyncio.run(one()) * 1000 for _ in range(trials)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    os.environ.update({"SIGNOFF_CHANNELS": "email", "SIGNOFF_SMTP_PORT": str(smtp_port)})
    if args.database_url:  # a clean schema, as run.py does
        import sqlalchemy as sa

        engine = sa.create_engine(args.database_url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            policies = Path(tmp) / "policies"
            shutil.copytree(EXAMPLES / "policies", policies)
            (policies / "05-bench.yaml").write_text(BENCH_POLICIES)
            os.environ["SIGNOFF_POLICIES_DIR"] = str(policies)
            server = SignoffServer(Path(tmp), args.database_url)
            headers = {"Authorization": f"Bearer {server.tokens['dave']}"}
            latencies: list[float] = []
            round_trips: list[float] = []
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
                for i in range(args.trials + 5):
                    inbox.event.clear()
                    before = len(inbox.arrivals)
                    body = {
                        "action": {**WRITE, "params": {"sql": f"UPDATE t SET n = {i}"}},
                        "reason": "bench",
                        "ticket": "OPS-1",
                    }
                    sent = time.perf_counter()
                    resp = c.post("/v1/requests", json=body)
                    answered = time.perf_counter()
                    assert resp.status_code == 201, resp.text
                    deadline = time.monotonic() + 10
                    while len(inbox.arrivals) == before and time.monotonic() < deadline:
                        inbox.event.wait(0.5)
                        inbox.event.clear()
                    if i >= 5:
                        latencies.append((inbox.arrivals[before][0] - sent) * 1000)
                        round_trips.append((answered - sent) * 1000)
                time.sleep(1)
                # (2) a burst of 100 identical requests
                inbox.arrivals.clear()
                burst = {
                    "action": {**WRITE, "params": {"sql": "UPDATE t SET burst = 1"}},
                    "reason": "burst",
                    "ticket": "OPS-2",
                }

                async def fire() -> list[int]:
                    async with httpx.AsyncClient(
                        base_url=server.url, headers=headers, timeout=60
                    ) as ac:
                        rs = await asyncio.gather(
                            *(ac.post("/v1/requests", json=burst) for _ in range(100))
                        )
                    return [r.status_code for r in rs]

                codes = asyncio.run(fire())
                time.sleep(3)

                # (3) 100 distinct requests, with and without a digest
                async def distinct(kind: str) -> None:
                    async with httpx.AsyncClient(
                        base_url=server.url, headers=headers, timeout=60
                    ) as ac:
                        await asyncio.gather(
                            *(
                                ac.post(
                                    "/v1/requests",
                                    json={
                                        "action": {
                                            "type": kind,
                                            "target": f"reports/{i}",
                                            "params": {"n": i},
                                        },
                                        "reason": "bench",
                                    },
                                )
                                for i in range(100)
                            )
                        )

                asyncio.run(distinct("bench.immediate"))
                asyncio.run(distinct("bench.digest"))
                time.sleep(8)  # past the end of the 5 s window
            server.stop()
        per_approver = Counter(
            to for _, to, raw in inbox.arrivals if "UPDATE t SET burst = 1" in raw
        )
        immediate = Counter(to for _, to, raw in inbox.arrivals if "bench.immediate" in raw)
        digested = Counter(to for _, to, raw in inbox.arrivals if "bench.digest" in raw)
        base = baseline(smtp_port, args.trials)
    finally:
        smtp.stop()
    latencies.sort()
    p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]
    b50 = statistics.median(base)
    name = "postgresql" if args.database_url else "sqlite"
    print(
        f"{name}: request sent to first mail received (an upper bound on commit to send): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; the POST's own round trip p50 "
        f"{statistics.median(round_trips):.1f} ms (baseline: one direct SMTP send p50 "
        f"{b50:.1f} ms; ratio p50 {p50 / b50:.1f})"
    )
    print(
        f"{name}: burst of 100 identical requests ({codes.count(201)} created, "
        f"{codes.count(200)} folded): messages per approver {dict(per_approver)}"
    )
    print(
        f"{name}: 100 distinct requests: messages per approver without a digest "
        f"{dict(immediate)}, with a 5 s digest {dict(digested)}"
    )


if __name__ == "__main__":
    main()
