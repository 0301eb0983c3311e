"""Wake-ups across replicas with PostgreSQL LISTEN/NOTIFY.

Each unit of work that changed requests sends ``pg_notify('signoff_requests', id)``
inside its transaction, so PostgreSQL delivers the notification exactly when the change
commits. Every replica runs one ``PostgresListener``: a thread with its own connection
that LISTENs and republishes each id on the replica's in-process event bus, which wakes
the server-sent-event streams waiting on that request. The database stays the source of
truth: a woken stream re-reads the audit log. If the listening connection drops, the
listener reconnects and wakes every stream once, so nothing that happened meanwhile is
missed.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from signoff.adapters.db.repositories import NOTIFY_CHANNEL as CHANNEL
from signoff.adapters.event_bus import InProcessEventBus
from signoff.adapters.executors.scrubbing import Scrubber

log = logging.getLogger("signoff.pg_notify")


def connect_args(sqlalchemy_url: str) -> dict[str, Any]:
    """The connection parameters of a SQLAlchemy URL, as psycopg keywords: parsed once
    by SQLAlchemy, as the engine does, so a password with a space or a ``%`` works the
    same here and never appears in a parse error."""
    url = make_url(sqlalchemy_url)
    args: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
    args.update({k: v for k, v in url.query.items() if isinstance(v, str)})
    return args


class PostgresListener:
    def __init__(self, url: str, bus: InProcessEventBus) -> None:
        self.args = connect_args(url)
        secret = self.args.get("password")
        self.scrub = Scrubber([str(secret)] if secret else [])
        self.bus = bus
        self._stop = threading.Event()
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signoff-listen", daemon=True)

    def start(self) -> PostgresListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        delay = 0.1
        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(autocommit=True, **self.args) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.ready.set()
                    if not first:
                        self.bus.publish_all()  # whatever happened while we were away
                    first = False
                    delay = 0.1
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self.bus.publish(note.payload)
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); reconnecting", self.scrub.text(str(exc)))
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
