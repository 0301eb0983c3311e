"""`signoff serve --workers N`: each of N server processes builds its own application.

uvicorn starts the processes and calls ``factory`` in each. The parent migrated the
database and printed the first-start token before; a process builds from the same
settings (the environment, and ``SIGNOFF_PORT``/``SIGNOFF_PUBLIC_URL`` as the parent
chose them), without migrating, and runs its own deadline worker and dispatcher and its
own LISTEN for the other processes' changes: on PostgreSQL the sweeps claim with
``FOR UPDATE SKIP LOCKED`` and deliveries with leases, so N processes are N replicas
that share one port. SQLite has one writer at a time, so more processes there would
only queue on its lock: the CLI refuses it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

if TYPE_CHECKING:
    from signoff.bootstrap import App


@contextmanager
def running(signoff_app: App) -> Iterator[None]:
    """What a server process runs beside its requests, for as long as it serves: the
    deadline worker and dispatcher (unless SIGNOFF_WORKER_IN_SERVER=false) and, on
    PostgreSQL, the LISTEN that wakes its event streams for other processes' changes.
    The application is closed at the end."""
    settings = signoff_app.settings
    worker = signoff_app.worker().start() if settings.worker_in_server else None
    listener = None
    try:
        if signoff_app.engine.dialect.name == "postgresql":
            from signoff.adapters.pg_notify import PostgresListener

            listener = PostgresListener(settings.effective_database_url(), signoff_app.bus)
            listener.start()
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
