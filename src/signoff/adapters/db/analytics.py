"""The rows the flow's analytics read: the requests asked in a window, their asks, votes
and flow events, and what is pending now. Each query is served by an index (requests by
``created_at``, children by ``request_id``, pending by ``status``), so a report costs what
its window holds, not what the database holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from signoff.adapters.db import tables as t
from signoff.domain.actions import Action
from signoff.services.ports import FlowRows, RequestRow, StoredAsk

_PAGE = 2000  # asks read per query by a replay


class DatabaseFlowRows:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @staticmethod
    def _instant(column: Any) -> Any:
        """A time column read without the UTC type's per-value Python conversion (a
        report reads hundreds of thousands): the driver's own datetime."""
        return sa.type_coerce(column, sa.DateTime(timezone=True)).label(column.name)

    def _aware(self, value: datetime) -> datetime:
        # SQLite hands back naive UTC datetimes; PostgreSQL aware ones (any zone)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    def rows(self, since: datetime, until: datetime, policy: str | None) -> FlowRows:
        r = t.requests
        query = sa.select(
            r.c.id,
            r.c.policy_name,
            r.c.status,
            r.c.requester,
            self._instant(r.c.created_at).label("created_at"),
            self._instant(r.c.decided_at).label("decided_at"),
            r.c.escalation_level,
            r.c.fold_count,
        ).where(r.c.created_at >= since, r.c.created_at < until)
        if policy is not None:
            query = query.where(r.c.policy_name == policy)
        requests = [
            RequestRow(
                id=row.id,
                policy=row.policy_name,
                status=row.status,
                requester=row.requester,
                created_at=self._aware(row.created_at),
                decided_at=self._aware(row.decided_at) if row.decided_at is not None else None,
                escalated=row.escalation_level > 0,
                folds=row.fold_count,
            )
            for row in self.conn.execute(query).all()
        ]
        asks: list[tuple[str, str]] = []
        votes: list[tuple[str, str, str, datetime]] = []
        events: list[tuple[str, str, str, str, datetime]] = []
        a, v, f = t.request_approvers, t.votes, t.flow_events
        # each child table read in one query, joined to the window's requests (not by
        # lists of their ids: hundreds of round trips on a busy month)
        window = [r.c.created_at >= since, r.c.created_at < until]
        if policy is not None:
            window.append(r.c.policy_name == policy)
        asks = [
            (row.request_id, row.person)
            for row in self.conn.execute(
                sa.select(a.c.request_id, a.c.person)
                .join(r, r.c.id == a.c.request_id)
                .where(*window, a.c.stage >= 0)
                .distinct()
            ).all()
        ]
        votes = [
            (row.request_id, row.voter, row.decision, self._aware(row.at))
            for row in self.conn.execute(
                sa.select(v.c.request_id, v.c.voter, v.c.decision, self._instant(v.c.at))
                .join(r, r.c.id == v.c.request_id)
                .where(*window)
            ).all()
        ]
        events = [
            (row.request_id, row.person, row.kind, row.channel, self._aware(row.at))
            for row in self.conn.execute(
                sa.select(f.c.request_id, f.c.person, f.c.kind, f.c.channel, self._instant(f.c.at))
                .join(r, r.c.id == f.c.request_id)
                .where(*window, f.c.kind != "notified")  # counted per day below
            ).all()
        ]
        if self.conn.dialect.name == "postgresql":
            day: Any = sa.cast(sa.func.timezone("UTC", f.c.at), sa.Date)
        else:
            day = sa.func.date(f.c.at)  # stored in UTC
        delivered = sa.select(f.c.person, day.label("day"), sa.func.count().label("n")).where(
            f.c.at >= since, f.c.at < until, f.c.kind == "notified"
        )
        if policy is not None:  # only the asks about this policy's requests
            delivered = delivered.where(
                f.c.request_id.in_(sa.select(r.c.id).where(r.c.policy_name == policy))
            )
        notified = [
            (row.person, str(row.day), int(row.n))
            for row in self.conn.execute(delivered.group_by(f.c.person, day)).all()
        ]
        return FlowRows(requests, asks, votes, events, notified)

    def asks(self, since: datetime, until: datetime) -> Iterator[StoredAsk]:
        r = t.requests
        columns = (
            r.c.id,
            r.c.requester,
            r.c.action_type,
            r.c.action_target,
            r.c.action_params,
            r.c.context,
            r.c.ticket,
            r.c.created_at,
            r.c.requester_snapshot,
        )
        after: tuple[datetime, str] | None = None
        while True:  # keyset pages on (created_at, id): each one an index range
            query = sa.select(*columns).where(r.c.created_at >= since, r.c.created_at < until)
            if after is not None:
                query = query.where(sa.tuple_(r.c.created_at, r.c.id) > after)
            rows = self.conn.execute(query.order_by(r.c.created_at, r.c.id).limit(_PAGE)).all()
            for row in rows:
                yield StoredAsk(
                    id=row.id,
                    requester=row.requester,
                    action=Action(row.action_type, row.action_target, row.action_params),
                    context=row.context,
                    ticket=row.ticket,
                    created_at=row.created_at,
                    snapshot=row.requester_snapshot,
                )
            if len(rows) < _PAGE:
                return
            after = (rows[-1].created_at, rows[-1].id)

    def pending(self, limit: int) -> list[dict[str, Any]]:
        r = t.requests
        found = self.conn.execute(
            sa.select(
                r.c.id,
                r.c.policy_name,
                r.c.requester,
                r.c.action_type,
                r.c.action_target,
                r.c.created_at,
                r.c.deadline_at,
            )
            .where(r.c.status == "pending")
            .order_by(r.c.created_at, r.c.id)
            .limit(limit)
        )
        return [
            {
                "id": row.id,
                "policy": row.policy_name,
                "requester": row.requester,
                "type": row.action_type,
                "target": row.action_target,
                "created_at": row.created_at,
                "deadline_at": row.deadline_at if row.deadline_at is not None else None,
            }
            for row in found
        ]

    def pending_due(self, before: datetime, limit: int) -> list[dict[str, Any]]:
        """Pending requests whose deadline (timeout or escalation) comes before ``before``."""
        r = t.requests
        found = self.conn.execute(
            sa.select(r.c.id, r.c.policy_name, r.c.requester, r.c.created_at, r.c.deadline_at)
            .where(r.c.status == "pending", r.c.deadline_at < before)
            .order_by(r.c.deadline_at)
            .limit(limit)
        )
        return [
            {
                "id": row.id,
                "policy": row.policy_name,
                "requester": row.requester,
                "created_at": row.created_at,
                "deadline_at": row.deadline_at,
            }
            for row in found
        ]

    def pending_count(self) -> int:
        r = t.requests
        return int(
            self.conn.execute(
                sa.select(sa.func.count()).select_from(r).where(r.c.status == "pending")
            ).scalar_one()
        )
