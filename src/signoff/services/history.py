"""A requester's record, as policies read it (progressive trust): their earlier asks by
outcome, from the per-day tallies the use cases keep (``history_tallies``), and when
they were first seen. Read lazily (only when a condition asks) and once per evaluation
for each action type."""

from __future__ import annotations

import fnmatch
import re
from datetime import datetime, timedelta

from signoff.services.dependencies import Services


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
        self._rows: dict[tuple[str, datetime], list[tuple[str, str, int]]] = {}
        self._first: list[datetime | None] = []

    def count(self, kind: str, action_type: str, target_glob: str, since: datetime) -> int:
        key = (action_type, since)
        rows = self._rows.get(key)
        if rows is None:
            with self.svc.uow(write=False) as uow:
                rows = uow.flow.record(self.requester, action_type, since, self.until)
            self._rows[key] = rows
        matches = re.compile(fnmatch.translate(target_glob)).match
        total: dict[str, int] = {}
        for target, outcome, n in rows:
            if matches(target):
                total[outcome] = total.get(outcome, 0) + n
        if kind == "approved":  # approved without an incident after
            return max(0, total.get("approved", 0) - total.get("incident", 0))
        return total.get(kind, 0)

    def first_seen(self) -> datetime | None:
        if not self._first:
            with self.svc.uow(write=False) as uow:
                self._first.append(uow.flow.first_seen(self.requester))
        return self._first[0]
