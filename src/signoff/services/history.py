"""A requester's record, as policies read it (progressive trust): their earlier asks by
outcome, from the per-day tallies the use cases keep (``history_tallies``), and when
they were first seen. Read lazily (only when a condition asks), once per evaluation for
each action type and window, and kept a moment per process (``HistoryCache``) so a
burst of asks by one requester reads it once."""

from __future__ import annotations

import fnmatch
import re
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from signoff.services.dependencies import Services

_CACHE_LIMIT = 10_000  # entries; the cache is emptied when full


class HistoryCache:
    """Records read in the last ``seconds`` (0: none kept), by requester. A process
    forgets a requester's as soon as it writes to their record; another replica's write
    is seen at most ``seconds`` later."""

    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def get(self, key: tuple[Any, ...]) -> Any | None:
        if self.seconds <= 0:
            return None
        found = self._entries.get(key)
        if found is None or time.monotonic() - found[0] > self.seconds:
            return None
        return found[1]

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= _CACHE_LIMIT:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)

    def forget(self, requester: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == requester]:
                del self._entries[key]


class StoredHistory:
    """The record of ``requester`` up to ``until`` (the ask being judged): through the
    day of ``until``; for a replay (``before_the_day``), through the day before, so an
    ask replayed is not judged on its own outcome (the record is kept by whole days)."""

    def __init__(
        self, svc: Services, requester: str, until: datetime, before_the_day: bool = False
    ) -> None:
        self.svc = svc
        self.requester = requester
        self.until = until - timedelta(days=1) if before_the_day else until
        self.cache = None if before_the_day else svc.history_cache

    def count(self, kind: str, action_type: str, target_glob: str, since: datetime) -> int:
        key = (self.requester, action_type, since.date(), self.until.date())
        rows = self.cache.get(key) if self.cache is not None else None
        if rows is None:
            with self.svc.uow(write=False) as uow:
                rows = uow.flow.record(self.requester, action_type, since, self.until)
            if self.cache is not None:
                self.cache.put(key, rows)
        matches = re.compile(fnmatch.translate(target_glob)).match
        total: dict[str, int] = {}
        for target, outcome, n in rows:
            if matches(target):
                total[outcome] = total.get(outcome, 0) + n
        if kind == "approved":  # approved without an incident after
            return max(0, total.get("approved", 0) - total.get("incident", 0))
        return int(total.get(kind, 0))

    def first_seen(self) -> datetime | None:
        key = (self.requester, "first_seen")
        if self.cache is not None and (found := self.cache.get(key)) is not None:
            return found[0]  # type: ignore[no-any-return]
        with self.svc.uow(write=False) as uow:
            first = uow.flow.first_seen(self.requester)
        if self.cache is not None and first is not None:  # a first ask stays the first
            self.cache.put(key, (first,))
        return first
