"""`signoff serve --workers N`: each of N server processes builds its own application.

uvicorn starts the processes and calls ``factory`` in each. The parent migrated the
database and printed the first-start token before; a process builds from the same
settings (the environment, and ``SIGNOFF_PORT``/``SIGNOFF_PUBLIC_URL`` as the parent
chose them), without migrating, and runs its own deadline worker and dispatcher and its
own watch of the other processes' changes (PostgreSQL's LISTEN; on SQLite, a look at the
audit head every 50 ms). The sweeps and deliveries claim with ``FOR UPDATE SKIP LOCKED``
and leases on PostgreSQL, in exclusive write transactions on SQLite, so N processes are
N replicas that share one port. On SQLite their writers take turns (one writer at a
time, queued on a lock file across processes) while the rest of the work, most of a
request's cost, runs side by side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

if TYPE_CHECKING:
    from signoff.adapters.pg_notify import PostgresListener
    from signoff.adapters.sqlite_feed import SqliteChangeFeed
    from signoff.bootstrap import App


@contextmanager
def running(signoff_app: App) -> Iterator[None]:
    """What a server process runs beside its requests, for as long as it serves: the
    deadline worker and dispatcher (unless SIGNOFF_WORKER_IN_SERVER=false) and what wakes
    its event streams for other processes' changes (PostgreSQL's LISTEN, SQLite's feed).
    The application is closed at the end."""
    settings = signoff_app.settings
    worker = signoff_app.worker().start() if settings.worker_in_server else None
    listener: PostgresListener | SqliteChangeFeed | None = None
    try:
        if signoff_app.engine.dialect.name == "postgresql":
            from signoff.adapters.pg_notify import PostgresListener

            listener = PostgresListener(settings.effective_database_url(), signoff_app.bus)
            listener.start()
        else:
            from signoff.adapters.sqlite_feed import SqliteChangeFeed

            listener = SqliteChangeFeed(signoff_app.engine, signoff_app.bus).start()
        yield
    finally:
        if worker is not None:
            worker.stop()
        if listener is not None:
            listener.stop()
        signoff_app.close()


def factory() -> FastAPI:
    from signoff.bootstrap import build
    from signoff.config import Settings
    from signoff.entrypoints.api.app import create_app

    signoff_app = build(Settings(), migrate=False)
    api = create_app(signoff_app)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        with running(signoff_app):
            yield

    api.router.lifespan_context = lifespan
    return api


QUICK = 10.0  # seconds: a process that ends sooner after its start failed to start
FACTORY = "signoff.entrypoints.api.processes:factory"
UVICORN: dict[str, Any] = {"log_level": "info", "timeout_graceful_shutdown": 2}


def serve_processes(count: int, host: str, port: int) -> int:
    """Run ``count`` server processes on ``host:port`` until told to stop (SIGINT, SIGTERM);
    the exit status (3: the processes kept failing at start).

    On Linux each process listens on a socket of its own, bound with ``SO_REUSEPORT``: the
    kernel spreads connections over the processes evenly. (uvicorn's own workers accept
    from one shared socket, and a burst of keep-alive connections, as a load balancer or a
    load generator opens them, may all land on whichever process woke first: two
    processes then served like one.) A process that dies after serving is started again;
    three in a row that end within ``QUICK`` seconds of their start stop the whole server
    (the port taken, the database gone: starting them again would not help). Elsewhere,
    uvicorn's workers."""
    import multiprocessing
    import signal
    import socket
    import sys
    import time

    import uvicorn

    if not sys.platform.startswith("linux") or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(FACTORY, factory=True, workers=count, host=host, port=port, **UVICORN)
        return 0
    spawn = multiprocessing.get_context("spawn")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def start() -> tuple[multiprocessing.process.BaseProcess, float]:
        p = spawn.Process(target=_serve_one, args=(host, port), name="signoff-server")
        p.start()
        return p, time.monotonic()

    processes = [start() for _ in range(count)]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"Signoff serving on http://{shown}:{port} with {count} processes (Press CTRL+C to quit)",
        file=sys.stderr,
        flush=True,
    )
    failed_starts = 0
    try:
        while not stopping:
            time.sleep(0.2)
            for i, (p, started) in enumerate(processes):
                if p.is_alive() or stopping:
                    continue
                quick = time.monotonic() - started < QUICK
                failed_starts = failed_starts + 1 if quick else 0
                if failed_starts >= 3:
                    print(
                        f"error: server processes keep ending at start (the last with status "
                        f"{p.exitcode}; its reason is above): stopping",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 3
                print(
                    f"server process [{p.pid}] exited ({p.exitcode}): starting another",
                    file=sys.stderr,
                    flush=True,
                )
                processes[i] = start()
        return 0
    finally:
        for p, _ in processes:
            if p.is_alive():
                p.terminate()  # SIGTERM: uvicorn finishes what it serves, then exits
        for p, _ in processes:
            p.join(10)
            if p.is_alive():
                p.kill()


def _serve_one(host: str, port: int) -> None:
    """One of ``serve_processes``'s processes: its own listening socket on the shared
    address, and its own application (``factory``)."""
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(FACTORY, factory=True, host=host, port=port, **UVICORN))
    server.run(sockets=[sock])
    if not server.started:  # its start failed (uvicorn said why): not a clean stop
        raise SystemExit(3)
