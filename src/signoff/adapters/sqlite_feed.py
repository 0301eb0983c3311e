"""Live wake-ups across processes on one SQLite database.

PostgreSQL tells every replica of a change (LISTEN/NOTIFY, ``pg_notify.py``); SQLite has
no such thing. Each server process on SQLite (``serve --workers N``, beside a separate
``signoff worker`` or CLI commands that write) reads the audit head every ``interval``
instead, and when it moved, which requests the new events belong to: their live streams
are woken, as a change made in this process wakes them at once. The database stays the
source of truth; a wake-up only says "look again now".
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from signoff.adapters.db import tables as t
from signoff.adapters.event_bus import InProcessEventBus

log = logging.getLogger("signoff.sqlite_feed")

# Past this many new events in one look, waking every stream costs less than reading
# which requests they were about.
MAX_SPAN = 10_000


class SqliteChangeFeed:
    def __init__(self, engine: Engine, bus: InProcessEventBus, interval: float = 0.05) -> None:
        self.engine = engine
        self.bus = bus
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signoff-sqlite-feed", daemon=True)
        self.seen: int | None = None
        self._failing = False

    def start(self) -> SqliteChangeFeed:
        self.seen = self._head()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _head(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(t.audit_head.c.seq)).scalar() or 0)

    def look(self) -> int:
        """Wake the streams of requests changed since the last look; how many events."""
        last = self.seen or 0
        with self.engine.connect() as conn:
            head = int(conn.execute(sa.select(t.audit_head.c.seq)).scalar() or 0)
            if head <= last:
                return 0
            if head - last > MAX_SPAN:
                ids = None
            else:
                a = t.audit_events
                q = (
                    sa.select(a.c.request_id)
                    .where(a.c.seq > last, a.c.seq <= head, a.c.request_id.is_not(None))
                    .distinct()
                )
                ids = [rid for (rid,) in conn.execute(q)]
        self.seen = head
        if ids is None:
            self.bus.publish_all()
        else:
            for rid in ids:
                self.bus.publish(rid)
        return head - last

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.look()
                self._failing = False
            except Exception as exc:  # the database is busy or away: look again next time
                if not self._failing:  # once, not 20 times a second
                    log.warning("live updates from other processes paused: %s", exc)
                self._failing = True
