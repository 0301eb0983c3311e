"""Wake-ups for live status (server-sent events) within one process.

Use cases publish a request id after commit, from any thread; each waiting SSE
stream holds an ``asyncio.Event`` per request and re-reads the audit log when woken.
The database stays the source of truth; this only says "look again now". (Across
replicas, PostgreSQL LISTEN/NOTIFY feeds the same interface: a later issue.)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict

ANY = "*"  # subscribe to this key to be woken by every request's change (the web inbox)


class InProcessEventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = (
            defaultdict(set)
        )

    def subscribe(self, request_id: str) -> asyncio.Event:
        ev = asyncio.Event()
        with self._lock:
            self._waiters[request_id].add((asyncio.get_running_loop(), ev))
        return ev

    def unsubscribe(self, request_id: str, ev: asyncio.Event) -> None:
        with self._lock:
            waiters = self._waiters.get(request_id)
            if waiters is None:
                return
            for item in [w for w in waiters if w[1] is ev]:
                waiters.discard(item)
            if not waiters:
                del self._waiters[request_id]

    def publish_all(self) -> None:
        """Wake every waiting stream (after a gap in cross-replica notifications)."""
        with self._lock:
            ids = list(self._waiters)
        for rid in ids:
            self.publish(rid)

    def publish(self, request_id: str) -> None:
        """Wake whoever waits on this request, and whoever waits on any ("*")."""
        with self._lock:
            waiters = [*self._waiters.get(request_id, ()), *self._waiters.get(ANY, ())]
        for loop, ev in waiters:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(ev.set)
