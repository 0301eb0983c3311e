"""SQLAlchemy implementations of the storage ports, and the unit of work."""

from __future__ import annotations

import base64
import builtins
import contextlib
import copy
import functools
import json
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from signoff.adapters.db import tables as t
from signoff.adapters.db.analytics import DatabaseFlowRows
from signoff.adapters.db.direct import Direct, send_held
from signoff.domain.actions import Action
from signoff.domain.audit import GENESIS_HASH, AuditEvent, ChainRow, chain_next, format_time
from signoff.domain.errors import Conflict, InvalidInput, NotFound
from signoff.domain.events import AuditedEvent
from signoff.domain.requests import Decision, Grant, Request, StagePlan, Status, Vote
from signoff.services.ports import (
    ApiToken,
    AuditQuery,
    FlowEntry,
    GitHubDelivery,
    Notification,
    OidcIdentity,
    OidcLogin,
    Page,
    Passkey,
    PasskeyChallenge,
    RequestBrief,
    WebSession,
)

try:
    import fcntl
except ImportError:  # Windows: this process's writers still queue on a lock of their own
    fcntl = None  # type: ignore[assignment]

VIEWING = -1  # request_approvers.stage of those who may only see a request


class DatabaseRequestRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._persisted_votes: dict[str, int] = {}
        self._had_grant: dict[str, bool] = {}
        self._escalated: dict[tuple[str, int], bool] = {}

    def add(self, r: Request) -> None:
        _INSERT_REQUEST.execute(self.conn, self._row(r))
        rows = [
            {"request_id": r.id, "stage": i, "person": p}
            for i, s in enumerate(r.stages)
            for p in s.approvers
        ]
        # stage -1: people who may see it without voting (visible_to, executors), so a
        # person's list is one indexed lookup
        rows += [
            {"request_id": r.id, "stage": VIEWING, "person": p}
            for p in sorted(r.viewers | r.executors)
        ]
        _INSERT_APPROVERS.execute(self.conn, rows)
        self._persisted_votes[r.id] = 0
        self._had_grant[r.id] = False
        self._write_children(r)

    def _row(self, r: Request) -> dict[str, Any]:
        return {
            "id": r.id,
            "status": r.status.value,
            "requester": r.requester,
            "action_type": r.action.type,
            "action_target": r.action.target,
            "action_params": r.action.params,
            "action_digest": r.action_digest,
            "reason": r.reason,
            "ticket": r.ticket,
            "context": r.context,
            "policy_name": r.policy_name,
            "policy_set_digest": r.policy_set_digest,
            "stages": [s.as_dict() for s in r.stages],
            "current_stage": r.current_stage,
            "grant_ttl_seconds": int(r.grant_ttl.total_seconds()),
            "grant_uses": r.grant_uses,
            "read_only": r.read_only,
            "executors": sorted(r.executors),
            "redeemers": sorted(r.redeemers),
            "viewers": sorted(r.viewers),
            "created_at": r.created_at,
            "stage_started_at": r.stage_started_at,
            "decided_at": r.decided_at,
            "version": r.version,
            "on_timeout": r.on_timeout,
            "escalation_level": r.escalation_level,
            "reminders_sent": r.reminders_sent,
            "expires_at": r.expires_at,
            "next_due_at": r.next_due_at,
            "deadline_at": r.deadline_at,
            "fold_count": r.fold_count,
            "notify": list(r.notify),
            "digest_seconds": (
                int(r.digest_every.total_seconds()) if r.digest_every is not None else None
            ),
            "expiry_warned": r.expiry_warned,
            "outcome": r.outcome,
            "requester_snapshot": r.requester_snapshot,
        }

    def _write_children(self, r: Request) -> None:
        key = (r.id, r.current_stage)
        if r.status is Status.PENDING and r.escalation_level > 0 and not self._escalated.get(key):
            stage = r.stages[r.current_stage]
            added = stage.escalate_to - stage.approvers
            if added:
                self.conn.execute(
                    t.request_approvers.insert(),
                    [{"request_id": r.id, "stage": r.current_stage, "person": p} for p in added],
                )
            self._escalated[key] = True
        done = self._persisted_votes.get(r.id, 0)
        new_votes = r.votes[done:]
        if new_votes:
            send_held(self.conn)  # so that only the vote's own failure means "voted"
            try:
                self.conn.execute(
                    t.votes.insert(),
                    [
                        {
                            "request_id": r.id,
                            "voter": v.voter,
                            "decision": v.decision.value,
                            "comment": v.comment,
                            "stage": v.stage,
                            "at": v.at,
                        }
                        for v in new_votes
                    ],
                )
            except sa.exc.IntegrityError:
                raise Conflict("this person has already voted on this request") from None
        self._persisted_votes[r.id] = len(r.votes)
        g = r.grant
        if g is not None:
            values = {
                "issued_at": g.issued_at,
                "expires_at": g.expires_at,
                "uses_total": g.uses_total,
                "uses_left": g.uses_left,
                "revoked_at": g.revoked_at,
            }
            if self._had_grant.get(r.id):
                # Guarded with the request row: save() wrote it only if its version was
                # the one read, and every use of the grant moves that version.
                self.conn.execute(t.grants.update().where(t.grants.c.id == g.id).values(values))
            else:
                _INSERT_GRANT.execute(self.conn, {"id": g.id, "request_id": r.id, **values})
                self._had_grant[r.id] = True

    def get(self, request_id: str, for_update: bool = False) -> Request:
        q = sa.select(t.requests).where(t.requests.c.id == request_id)
        if for_update and self.conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = self.conn.execute(q).mappings().first()
        if row is None:
            raise NotFound(f"no request with id {request_id!r}")
        return self._load(row)

    def get_by_grant(self, grant_id: str, for_update: bool = False) -> Request:
        rid = self.conn.execute(
            sa.select(t.grants.c.request_id).where(t.grants.c.id == grant_id)
        ).scalar()
        if rid is None:
            raise NotFound(f"no grant with id {grant_id!r}")
        return self.get(rid, for_update)

    def _load(self, row: Any) -> Request:
        return self._load_many([row])[0]

    def _load_many(self, rows: list[Any]) -> list[Request]:
        """Requests from their rows, with their votes and grants read in two queries for
        all of them (not two per request)."""
        ids = [row["id"] for row in rows]
        votes: dict[str, list[Vote]] = {rid: [] for rid in ids}
        grants: dict[str, Grant] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for v in self.conn.execute(
                sa.select(t.votes).where(t.votes.c.request_id.in_(chunk)).order_by(t.votes.c.id)
            ).mappings():
                votes[v["request_id"]].append(
                    Vote(v["voter"], Decision(v["decision"]), v["comment"], v["stage"], v["at"])
                )
            for g in self.conn.execute(
                sa.select(t.grants).where(t.grants.c.request_id.in_(chunk))
            ).mappings():
                grants[g["request_id"]] = Grant(
                    g["id"],
                    g["expires_at"],
                    g["uses_total"],
                    g["uses_left"],
                    g["issued_at"],
                    g["revoked_at"],
                )
        return [self._build(row, votes[row["id"]], grants.get(row["id"])) for row in rows]

    def _build(self, row: Any, votes: list[Vote], grant: Grant | None) -> Request:
        rid = row["id"]
        self._persisted_votes[rid] = len(votes)
        self._had_grant[rid] = grant is not None
        self._escalated[(rid, row["current_stage"])] = row["escalation_level"] > 0
        return Request(
            id=rid,
            requester=row["requester"],
            action=Action(row["action_type"], row["action_target"], row["action_params"]),
            reason=row["reason"],
            ticket=row["ticket"],
            context=row["context"],
            policy_name=row["policy_name"],
            policy_set_digest=row["policy_set_digest"],
            stages=[StagePlan.from_dict(s) for s in row["stages"]],
            grant_ttl=timedelta(seconds=row["grant_ttl_seconds"]),
            grant_uses=row["grant_uses"],
            read_only=bool(row["read_only"]),
            executors=frozenset(row["executors"] or ()),
            redeemers=frozenset(row["redeemers"] or ()),
            viewers=frozenset(row["viewers"] or ()),
            created_at=row["created_at"],
            status=Status(row["status"]),
            current_stage=row["current_stage"],
            stage_started_at=row["stage_started_at"],
            decided_at=row["decided_at"],
            votes=votes,
            grant=grant,
            version=row["version"],
            on_timeout=row["on_timeout"],
            escalation_level=row["escalation_level"],
            reminders_sent=row["reminders_sent"],
            expires_at=row["expires_at"],
            fold_count=row["fold_count"],
            notify=tuple(row["notify"] or ()),
            digest_every=(
                timedelta(seconds=row["digest_seconds"]) if row["digest_seconds"] else None
            ),
            expiry_warned=bool(row["expiry_warned"]),
            outcome=row["outcome"],
            requester_snapshot=row["requester_snapshot"],
        )

    def save(self, r: Request, expected_version: int) -> None:
        """Store the aggregate (state, new votes, grant and its uses) if the request is
        still at ``expected_version``; else Conflict.

        Two guards, each load-bearing where the other is absent: the use cases read the
        request row locked (``FOR UPDATE`` on PostgreSQL; SQLite's write transactions
        are serialised), so concurrent callers decide one after the other on fresh
        state; and this compare-and-set on the version refuses a save made from state
        read without that lock, so nothing a concurrent caller did is overwritten."""
        row = self._row(r)
        for key in (
            "id",
            "requester",
            "action_type",
            "action_target",
            "action_params",
            "action_digest",
            "reason",
            "ticket",
            "context",
            "policy_name",
            "policy_set_digest",
            "stages",
            "created_at",
        ):
            row.pop(key)
        result = self.conn.execute(
            t.requests.update()
            .where(t.requests.c.id == r.id, t.requests.c.version == expected_version)
            .values(row)
        )
        if result.rowcount != 1:
            raise Conflict(f"request {r.id} was changed concurrently; try again")
        self._write_children(r)

    def pending_duplicate(self, requester: str, digest: str) -> str | None:
        """The oldest pending request of this requester for this exact action, if any.

        On PostgreSQL, identical submissions first take a transaction-scoped advisory lock
        on (requester, digest), so concurrent twins are folded too, not created twice."""
        r = t.requests
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(
                sa.select(
                    sa.func.pg_advisory_xact_lock(
                        sa.func.hashtextextended(sa.literal(f"{requester}/{digest}"), 0)
                    )
                )
            )
        q = (
            sa.select(r.c.id)
            .where(
                r.c.requester == requester,
                r.c.action_digest == digest,
                r.c.status == Status.PENDING.value,
            )
            .order_by(r.c.created_at)
            .limit(1)
        )
        return self.conn.execute(q).scalar()

    def ids_starting(self, prefix: str, limit: int) -> list[str]:
        """Ids that start with ``prefix`` (a range on the primary key), in id order."""
        r = t.requests.c
        q = sa.select(r.id).where(r.id >= prefix, r.id < prefix + "\x7f").order_by(r.id)
        return list(self.conn.execute(q.limit(limit)).scalars())

    def ids_after(self, after: str, limit: int) -> list[str]:
        """Request ids in id order, after ``after`` (a walk over every request)."""
        q = sa.select(t.requests.c.id).where(t.requests.c.id > after)
        return list(self.conn.execute(q.order_by(t.requests.c.id).limit(limit)).scalars())

    def statuses_of(self, request_ids: Iterable[str]) -> dict[str, str]:
        r = t.requests
        out: dict[str, str] = {}
        for chunk in _chunks(sorted(set(request_ids))):
            rows = self.conn.execute(sa.select(r.c.id, r.c.status).where(r.c.id.in_(chunk)))
            out.update((rid, status) for rid, status in rows)
        return out

    def claim_due(self, now: datetime, limit: int) -> list[str]:
        """Ids of requests due by ``now``, oldest first, locked for this transaction.

        On PostgreSQL ``FOR UPDATE SKIP LOCKED``: concurrent workers claim disjoint rows,
        so each deadline fires once. On SQLite the write transaction is exclusive anyway.
        Reads only the due rows, through the index on ``next_due_at``.
        """
        r = t.requests
        q = sa.select(r.c.id).where(r.c.next_due_at <= now).order_by(r.c.next_due_at).limit(limit)
        if self.conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        return list(self.conn.execute(q).scalars())

    def oldest_due(self, now: datetime) -> tuple[datetime | None, int]:
        """The oldest overdue time and how many requests are due (for /readyz, /metrics)."""
        r = t.requests
        row = self.conn.execute(
            sa.select(sa.func.min(r.c.next_due_at), sa.func.count()).where(r.c.next_due_at <= now)
        ).first()
        if row is None or row[0] is None:
            return None, 0
        oldest = row[0]
        if isinstance(oldest, str):
            oldest = datetime.fromisoformat(oldest)
        if oldest.tzinfo is None:
            from datetime import UTC

            oldest = oldest.replace(tzinfo=UTC)
        return oldest, int(row[1])

    def list(
        self,
        *,
        status: str | None,
        requester: str | None,
        awaiting: str | None,
        cursor: str | None,
        limit: int,
        viewer: str | None = None,
    ) -> Page:
        r = t.requests
        q = self._matching(sa.select(r), status, requester, awaiting, viewer)
        if cursor:
            created, rid = _decode_cursor(cursor)
            q = q.where(sa.tuple_(r.c.created_at, r.c.id) < sa.tuple_(created, rid))
        q = q.order_by(r.c.created_at.desc(), r.c.id.desc()).limit(limit + 1)
        rows = list(self.conn.execute(q).mappings())
        items = self._load_many(rows[:limit])
        nxt = None
        if len(rows) > limit:
            last = items[-1]
            nxt = _encode_cursor(last.created_at, last.id)
        return Page(items, nxt)

    def get_many(self, ids: builtins.list[str]) -> builtins.list[Request]:
        """These requests, in this order (ids not found are left out)."""
        rows = {
            row["id"]: row
            for start in range(0, len(ids), 500)
            for row in self.conn.execute(
                sa.select(t.requests).where(t.requests.c.id.in_(ids[start : start + 500]))
            ).mappings()
        }
        return self._load_many([rows[i] for i in ids if i in rows])

    def voted_by(self, person: str, limit: int) -> builtins.list[str]:
        """The requests this person voted on, most recent vote first."""
        v = t.votes
        q = sa.select(v.c.request_id).where(v.c.voter == person).order_by(v.c.at.desc())
        return [str(x) for x in self.conn.execute(q.limit(limit)).scalars()]

    def briefs(self, *, awaiting: str, viewer: str | None) -> builtins.list[RequestBrief]:
        """A few facts about every request awaiting this person, in one light query
        (no JSON decoded): enough to filter, count and order an inbox before loading
        the page shown."""
        r = t.requests
        risk = r.c.context["risk"].as_string()
        q = self._matching(
            sa.select(
                r.c.id,
                r.c.requester,
                r.c.action_target,
                r.c.policy_name,
                risk.label("risk"),
                r.c.created_at,
                r.c.deadline_at,
            ),
            None,
            None,
            awaiting,
            viewer,
        )
        return [
            RequestBrief(
                id=row.id,
                requester=row.requester,
                target=row.action_target,
                policy=row.policy_name,
                risk=row.risk,
                created_at=row.created_at,
                deadline_at=row.deadline_at,
            )
            for row in self.conn.execute(q)
        ]

    def count(
        self,
        *,
        status: str | None = None,
        requester: str | None = None,
        awaiting: str | None = None,
        viewer: str | None = None,
    ) -> int:
        """How many requests ``list`` would give with these filters, in one query."""
        q = self._matching(
            sa.select(sa.func.count()).select_from(t.requests), status, requester, awaiting, viewer
        )
        return int(self.conn.execute(q).scalar_one())

    def _matching(
        self,
        q: Any,
        status: str | None,
        requester: str | None,
        awaiting: str | None,
        viewer: str | None,
    ) -> Any:
        r = t.requests
        # Not an admin: their own requests and those they were asked. (Their inbox needs
        # no such filter: a request that awaits them was asked of them; nor do their own
        # requests, which they may all see: the planner then walks the requester's
        # index instead of matching every row against the union.)
        if viewer is not None and viewer != awaiting and viewer != requester:
            ra = t.request_approvers
            # an OR of two indexed terms: SQLite reads each through its index and
            # merges them (MULTI-INDEX OR), where `id IN (a UNION b)` scanned the table
            q = q.where(
                sa.or_(
                    r.c.requester == viewer,
                    r.c.id.in_(sa.select(ra.c.request_id).where(ra.c.person == viewer)),
                )
            )
        if status:
            try:
                Status(status)
            except ValueError:
                raise InvalidInput(
                    f"unknown status {status!r}; one of: {', '.join(s.value for s in Status)}",
                    field="status",
                ) from None
            q = q.where(r.c.status == status)
        if requester:
            q = q.where(r.c.requester == requester)
        if awaiting:
            ra, v = t.request_approvers, t.votes
            q = q.where(
                r.c.status == Status.PENDING.value,
                r.c.requester != awaiting,
                sa.exists().where(
                    ra.c.request_id == r.c.id,
                    ra.c.stage == r.c.current_stage,
                    ra.c.person == awaiting,
                ),
                ~sa.exists().where(v.c.request_id == r.c.id, v.c.voter == awaiting),
            )
        return q


def _encode_cursor(created: datetime, rid: str) -> str:
    raw = json.dumps([created.isoformat(), rid]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    """A cursor this server made: [time with its zone, request id]; anything else is
    refused as invalid input."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, rid = json.loads(raw)
        at = datetime.fromisoformat(created)
        if at.tzinfo is None or not isinstance(rid, str) or len(rid) > 100:
            raise ValueError("not a cursor of this server")
        return at, rid
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InvalidInput("invalid cursor", field="cursor") from exc


_MOVE_HEAD = Direct(
    lambda: (
        t.audit_head.update()
        .where(t.audit_head.c.id == 1)
        .values(seq=sa.bindparam("new_seq"), hash=sa.bindparam("new_hash"))
    )
)
# FOR UPDATE: on PostgreSQL, appenders queue on the head (SQLite has one writer anyway)
_READ_HEAD = Direct(
    lambda: (
        sa.select(t.audit_head.c.seq, t.audit_head.c.hash)
        .where(t.audit_head.c.id == 1)
        .with_for_update()
    )
)
_INSERT_EVENTS = Direct(lambda: t.audit_events.insert(), columns=True)
_INSERT_REQUEST = Direct(lambda: t.requests.insert(), columns=True)
_INSERT_APPROVERS = Direct(lambda: t.request_approvers.insert(), columns=True)
_INSERT_GRANT = Direct(lambda: t.grants.insert(), columns=True)
_INSERT_OUTBOX = Direct(lambda: t.outbox.insert(), columns=True)


class DatabaseAuditLog:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def head(self) -> tuple[int, str]:
        row = self.conn.execute(sa.select(t.audit_head.c.seq, t.audit_head.c.hash)).first()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    def append(self, at: datetime, request_id: str | None, event: AuditedEvent) -> AuditEvent:
        return self.append_all(at, request_id, [event])[0]

    def append_all(
        self, at: datetime, request_id: str | None, events: Sequence[AuditedEvent]
    ) -> list[AuditEvent]:
        if not events:
            return []
        row = _READ_HEAD.execute(self.conn, {})
        if row is None:
            raise RuntimeError("audit head missing: run `signoff db upgrade`")
        seq, prev = row[0], row[1]
        chained: list[AuditEvent] = []
        for event in events:
            ev = chain_next(seq, prev, at, event.actor, event.type, request_id, event.payload())
            chained.append(ev)
            seq, prev = ev.seq, ev.hash
        _INSERT_EVENTS.execute(
            self.conn,
            [
                {
                    "seq": ev.seq,
                    "at": ev.at,
                    "actor": ev.actor,
                    "type": ev.type,
                    "request_id": ev.request_id,
                    "payload": ev.payload,
                    "prev_hash": ev.prev_hash,
                    "hash": ev.hash,
                }
                for ev in chained
            ],
        )
        _MOVE_HEAD.execute(self.conn, {"new_seq": seq, "new_hash": prev})
        return chained

    def events(
        self, after: int = 0, request_id: str | None = None, limit: int | None = None
    ) -> Iterator[AuditEvent]:
        a = t.audit_events
        q = sa.select(a).where(a.c.seq > after).order_by(a.c.seq)
        if request_id is not None:
            q = q.where(a.c.request_id == request_id)
        if limit is not None:
            q = q.limit(limit)
        for row in self.conn.execute(q).mappings():
            yield _audit_event(row)

    def chain(self, batch: int = 1_000) -> Iterator[ChainRow]:
        """Every event in sequence order, as plain tuples, ``batch`` rows at a time, in this
        unit of work's transaction: through a server-side cursor on PostgreSQL (a client-side
        one would hold the whole log in memory), SQLite's own cursor stepping through the
        table otherwise. The driver's cursor, not SQLAlchemy's result: no row objects."""
        send_held(self.conn)  # this transaction's own appends, read below past SQLAlchemy
        raw = self.conn.connection.driver_connection
        assert raw is not None
        if self.conn.dialect.name == "postgresql":
            cursor = raw.cursor(name="signoff_audit_chain")
            cursor.itersize = batch
        else:
            cursor = raw.cursor()
        try:
            cursor.execute(_CHAIN)
            while rows := cursor.fetchmany(batch):
                yield from rows
        finally:
            cursor.close()

    def find(self, query: AuditQuery, limit: int) -> list[AuditEvent]:
        """Events matching ``query``, newest first: the page just older than
        ``query.before`` (or the newest), or the page just newer than ``query.after``.
        Times compare as stored text, which sorts as time (``format_time``)."""
        a = t.audit_events
        q = sa.select(a)
        if query.request_id is not None:
            q = q.where(a.c.request_id == query.request_id)
        if query.actor is not None:
            q = q.where(a.c.actor == query.actor)
        if query.type is not None:
            q = q.where(a.c.type == query.type)
        if query.since is not None:
            q = q.where(a.c.at >= format_time(query.since))
        if query.until is not None:
            q = q.where(a.c.at < format_time(query.until))
        if query.after is not None:
            q = q.where(a.c.seq > query.after).order_by(a.c.seq)
        else:
            if query.before is not None:
                q = q.where(a.c.seq < query.before)
            q = q.order_by(a.c.seq.desc())
        found = [_audit_event(row) for row in self.conn.execute(q.limit(limit)).mappings()]
        return found[::-1] if query.after is not None else found


_CHAIN = (
    "SELECT seq, at, actor, type, request_id, payload, prev_hash, hash FROM audit_events "
    "ORDER BY seq"
)


def _audit_event(row: Any) -> AuditEvent:
    return AuditEvent(
        row["seq"],
        row["at"],
        row["actor"],
        row["type"],
        row["request_id"],
        row["payload"],
        row["prev_hash"],
        row["hash"],
    )


class DatabaseOutbox:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(
        self,
        topic: str,
        request_id: str | None,
        payload: dict[str, Any],
        at: datetime,
        not_before: datetime | None = None,
    ) -> None:
        _INSERT_OUTBOX.execute(
            self.conn,
            {
                "created_at": at,
                "topic": topic,
                "request_id": request_id,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": not_before or at,
            },
        )

    def claim(self, now: datetime, limit: int, lease: timedelta) -> list[Notification]:
        """Take up to ``limit`` due rows for one attempt each: their next attempt moves
        ``lease`` ahead, so a dispatcher that dies mid-delivery is retried, not lost."""
        o = t.outbox
        columns = (o.c.id, o.c.topic, o.c.request_id, o.c.payload, o.c.attempts)
        q = (
            sa.select(*columns, o.c.next_attempt_at)
            .where(o.c.status == "pending", o.c.next_attempt_at <= now)
            .order_by(o.c.next_attempt_at, o.c.id)
            .limit(limit)
        )
        pg = self.conn.dialect.name == "postgresql"
        if pg:
            q = q.with_for_update(skip_locked=True)
        rows = list(self.conn.execute(q).mappings())
        # A digest window's rows on one channel all leave at the same moment: take the
        # rest of them too, so each person gets one message whatever the batch size.
        windows = {(r["topic"], r["next_attempt_at"]) for r in rows if r["payload"].get("digest")}
        taken = {r["id"] for r in rows}
        for topic, at in windows:
            more = sa.select(*columns).where(
                o.c.status == "pending",
                o.c.topic == topic,
                o.c.next_attempt_at == at,
                o.c.id.notin_(taken),
            )
            if pg:
                more = more.with_for_update(skip_locked=True)
            extra = list(self.conn.execute(more).mappings())
            rows += extra
            taken |= {r["id"] for r in extra}
        if rows:
            self.conn.execute(
                o.update()
                .where(o.c.id.in_([r["id"] for r in rows]))
                .values(attempts=o.c.attempts + 1, next_attempt_at=now + lease)
            )
        return [
            Notification(r["id"], r["topic"], r["request_id"], r["payload"], r["attempts"] + 1)
            for r in rows
        ]

    def delivered(self, outbox_ids: Sequence[int]) -> None:
        o = t.outbox
        for chunk in _chunks(outbox_ids):
            self.conn.execute(
                o.update().where(o.c.id.in_(chunk)).values(status="delivered", last_error=None)
            )

    def defer(self, outbox_id: int, at: datetime) -> None:
        """Not now (quiet hours): deliver at ``at``; the claim's attempt does not count."""
        o = t.outbox
        self.conn.execute(
            o.update()
            .where(o.c.id == outbox_id)
            .values(next_attempt_at=at, attempts=o.c.attempts - 1)
        )

    def retry(self, outbox_id: int, at: datetime, error: str) -> None:
        self.conn.execute(
            t.outbox.update()
            .where(t.outbox.c.id == outbox_id)
            .values(next_attempt_at=at, last_error=error[:2000])
        )

    def dead(self, outbox_id: int, error: str) -> None:
        self.conn.execute(
            t.outbox.update()
            .where(t.outbox.c.id == outbox_id)
            .values(status="dead", last_error=error[:2000])
        )

    def rows(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        o = t.outbox
        q = sa.select(o).order_by(o.c.id.desc()).limit(limit)
        if status:
            q = q.where(o.c.status == status)
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def counts(self) -> dict[str, int]:
        o = t.outbox
        rows = self.conn.execute(sa.select(o.c.status, sa.func.count()).group_by(o.c.status))
        return {r[0]: int(r[1]) for r in rows}

    def requeue(self, outbox_id: int, at: datetime) -> Notification | None:
        o = t.outbox
        q = sa.select(o.c.id, o.c.topic, o.c.request_id, o.c.payload, o.c.attempts).where(
            o.c.id == outbox_id, o.c.status == "dead"
        )
        if self.conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = self.conn.execute(q).mappings().first()
        if row is None:
            return None
        self.conn.execute(
            o.update()
            .where(o.c.id == outbox_id, o.c.status == "dead")
            .values(status="pending", attempts=0, next_attempt_at=at)
        )
        return Notification(
            row["id"], row["topic"], row["request_id"], row["payload"], row["attempts"]
        )


class DatabaseLinkStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def use(self, jti: str, at: datetime) -> bool:
        """Record a link as used; False if it already was (even concurrently)."""
        send_held(self.conn)  # so that only this insert's failure means "used"
        try:
            with self.conn.begin_nested():
                self.conn.execute(t.used_links.insert(), {"jti": jti, "used_at": at})
        except sa.exc.IntegrityError:
            return False
        return True

    def used(self, jti: str) -> bool:
        q = sa.select(t.used_links.c.jti).where(t.used_links.c.jti == jti)
        return self.conn.execute(q).first() is not None


@functools.cache
def _finish_statement(dialect: str) -> sa.Update:
    """The UPDATE that records an outcome, built once per dialect. The output arrives as
    its canonical JSON and is stored as that text (cast to json on PostgreSQL), not
    encoded again from the rows."""
    e = t.executions
    output: sa.ColumnElement[Any] = sa.bindparam("p_output", type_=sa.Text)
    if dialect == "postgresql":
        output = sa.cast(output, e.c.output.type)
    return (
        e.update()
        .where(e.c.id == sa.bindparam("p_id", type_=e.c.id.type))
        .values(
            finished_at=sa.bindparam("p_finished_at", type_=e.c.finished_at.type),
            ok=sa.bindparam("p_ok", type_=e.c.ok.type),
            summary=sa.bindparam("p_summary", type_=e.c.summary.type),
            output=output,
            output_digest=sa.bindparam("p_digest", type_=e.c.output_digest.type),
        )
    )


class DatabaseExecutionStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def start(self, execution_id: str, request_id: str, actor: str, at: datetime) -> None:
        self.conn.execute(
            t.executions.insert(),
            {"id": execution_id, "request_id": request_id, "actor": actor, "started_at": at},
        )

    def finish(
        self,
        execution_id: str,
        at: datetime,
        ok: bool,
        summary: str,
        output_json: bytes,
        digest: str,
    ) -> None:
        self.conn.execute(
            _finish_statement(self.conn.dialect.name),
            {
                "p_id": execution_id,
                "p_finished_at": at,
                "p_ok": ok,
                "p_summary": summary,
                "p_output": output_json.decode("utf-8"),
                "p_digest": digest,
            },
        )

    def for_request(self, request_id: str) -> list[dict[str, Any]]:
        e = t.executions
        q = sa.select(e).where(e.c.request_id == request_id).order_by(e.c.started_at, e.c.id)
        return [dict(r) for r in self.conn.execute(q).mappings()]


class DatabaseTokenStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, token_id: str, user: str, token_hash: str, label: str, at: datetime) -> None:
        self.conn.execute(
            t.api_tokens.insert().values(
                id=token_id, user_name=user, token_hash=token_hash, label=label, created_at=at
            )
        )

    def user_for(self, token_hash: str) -> str | None:
        return self.conn.execute(
            sa.select(t.api_tokens.c.user_name).where(
                t.api_tokens.c.token_hash == token_hash, t.api_tokens.c.revoked_at.is_(None)
            )
        ).scalar()

    def count_for(self, user: str) -> int:
        return int(
            self.conn.execute(
                sa.select(sa.func.count()).where(t.api_tokens.c.user_name == user)
            ).scalar_one()
        )

    _SHOWN = (
        t.api_tokens.c.id,
        t.api_tokens.c.user_name,
        t.api_tokens.c.label,
        t.api_tokens.c.created_at,
        t.api_tokens.c.revoked_at,
    )

    def list(self, user: str | None, limit: int) -> list[ApiToken]:
        a = t.api_tokens
        q = sa.select(*self._SHOWN).order_by(a.c.created_at.desc(), a.c.id).limit(limit)
        if user is not None:
            q = q.where(a.c.user_name == user)
        return [ApiToken(*row) for row in self.conn.execute(q)]

    def get(self, token_id: str) -> ApiToken | None:
        row = self.conn.execute(
            sa.select(*self._SHOWN).where(t.api_tokens.c.id == token_id)
        ).first()
        return ApiToken(*row) if row is not None else None

    def revoke(self, token_id: str, at: datetime) -> str | None:
        a = t.api_tokens
        return self.conn.execute(
            a.update()
            .where(a.c.id == token_id, a.c.revoked_at.is_(None))
            .values(revoked_at=at)
            .returning(a.c.token_hash)
        ).scalar()

    def revoke_for_user(self, user: str, at: datetime) -> tuple[tuple[str, str], ...]:
        a = t.api_tokens
        rows = self.conn.execute(
            a.update()
            .where(a.c.user_name == user, a.c.revoked_at.is_(None))
            .values(revoked_at=at)
            .returning(a.c.id, a.c.token_hash)
        )
        return tuple(sorted((str(i), str(h)) for i, h in rows))


NOTIFY_CHANNEL = "signoff_requests"
# sent with the transaction's last statements, in their pipeline (its result is not read)
_NOTIFY = Direct(
    lambda: sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, sa.bindparam("rid", type_=sa.String))),
    hold=True,
)
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, _SqliteWriter] = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


class _Group:
    """One SQLite write transaction shared by the writers of a group commit."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.tx = conn.begin()
        self.members = 0  # writers whose work is in it, waiting for its commit
        self.entered = False  # the first writer works in it directly, the others in savepoints
        self.done = threading.Event()
        self.error: BaseException | None = None


class _SqliteWriter:
    """This process's writers on one SQLite database, committed in groups.

    SQLite has one writer at a time: they queue on a lock rather than in SQLite's busy
    handler, which sleeps and backs off. A writer that finds others queued behind it
    leaves its transaction open for them: each works in a savepoint of its own (its
    rollback undoes only its work), and the last of the group (nobody queued, or the group
    full) commits for all: one COMMIT, and one sync of the log, for the group. A writer's
    commit returns only once the group's is durable, and fails if the group's fails.

    Other processes on the same file (`serve --workers N`, `signoff worker`, the CLI)
    queue the same way: a group holds an exclusive lock on ``DATABASE-writer`` next to the
    database file for as long as it is open (the kernel wakes the next process at once;
    SQLite's busy handler would sleep)."""

    MAX_GROUP = 32

    def __init__(self, engine: Engine) -> None:
        self.lock = threading.Lock()
        self.guard = threading.Lock()
        self.queued = 0
        self.group: _Group | None = None
        path = engine.url.database or ""
        local = not path or path == ":memory:" or fcntl is None
        self._lock_path = None if local else f"{path}-writer"
        self._lock_fd: int | None = None

    def _lock_file(self) -> int | None:
        if self._lock_path is None:
            return None
        if self._lock_fd is None:
            # whoever may write the database may take the lock: the database's own mode
            database = self._lock_path.removesuffix("-writer")
            mode = os.stat(database).st_mode & 0o666 if os.path.exists(database) else 0o600
            try:
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, mode)
            except PermissionError:  # flock needs no write access to the file
                self._lock_fd = os.open(self._lock_path, os.O_RDONLY)
        return self._lock_fd

    def close(self) -> None:
        """The lock file's descriptor, closed (the engine was disposed)."""
        with self.lock:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def enter(self, engine: Engine) -> _Group:
        with self.guard:
            self.queued += 1
        try:
            self.lock.acquire()
        finally:  # even interrupted while waiting: nobody is queued in its name
            with self.guard:
                self.queued -= 1
        try:
            if self.group is None:
                fd = self._lock_file()
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # other processes' groups
                try:
                    conn = engine.connect().execution_options(sqlite_begin="IMMEDIATE")
                    try:
                        self.group = _Group(conn)
                    except BaseException:
                        conn.close()
                        raise
                except BaseException:
                    if fd is not None:
                        fcntl.flock(fd, fcntl.LOCK_UN)
                    raise
            return self.group
        except BaseException:
            self.lock.release()
            raise

    def leave(self, group: _Group, broken: bool = False) -> bool:
        """The lock holder is done with ``group``: commit it (or end it, with nothing in
        it) if nobody is queued, it is full or it is ``broken``; else keep it open for the
        next. True if it was ended."""
        try:
            with self.guard:
                last = broken or self.queued == 0 or group.members >= self.MAX_GROUP
            if not last:
                return False
            try:
                if broken or group.members == 0:
                    group.tx.rollback()
                    if group.members:  # their work went with it
                        group.error = RuntimeError(
                            "a write failed and took the transaction it shared with others"
                        )
                else:
                    group.tx.commit()
            except BaseException as exc:
                group.error = exc
                with contextlib.suppress(Exception):  # the connection is closed below
                    group.tx.rollback()
            finally:
                self.group = None
                try:
                    group.conn.close()
                finally:
                    if self._lock_fd is not None:
                        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                    group.done.set()
            return True
        finally:
            self.lock.release()


def _sqlite_writer(engine: Engine) -> _SqliteWriter:
    """The engine's writer (made at its first write; forgotten, its lock file closed,
    when the engine is disposed or collected)."""
    with _WRITE_LOCKS_GUARD:
        writer = _WRITE_LOCKS.get(engine)
        if writer is None:
            writer = _WRITE_LOCKS[engine] = _SqliteWriter(engine)

            def disposed(e: Engine) -> None:
                with _WRITE_LOCKS_GUARD:
                    gone = _WRITE_LOCKS.pop(e, None)
                if gone is not None:
                    gone.close()

            sa.event.listen(engine, "engine_disposed", disposed)
            weakref.finalize(engine, writer.close)
        return writer


class DatabaseSessionStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, id_hash: str, session: WebSession) -> None:
        self.conn.execute(
            t.web_sessions.insert(),
            {
                "id_hash": id_hash,
                "user_name": session.user,
                "csrf": session.csrf,
                "created_at": session.created_at,
                "last_seen_at": session.last_seen_at,
            },
        )

    def get(self, id_hash: str) -> WebSession | None:
        row = (
            self.conn.execute(sa.select(t.web_sessions).where(t.web_sessions.c.id_hash == id_hash))
            .mappings()
            .first()
        )
        if row is None:
            return None
        return WebSession(row["user_name"], row["csrf"], row["created_at"], row["last_seen_at"])

    def touch(self, id_hash: str, at: datetime) -> None:
        self.conn.execute(
            t.web_sessions.update()
            .where(t.web_sessions.c.id_hash == id_hash)
            .values(last_seen_at=at)
        )

    def delete(self, id_hash: str) -> None:
        self.conn.execute(t.web_sessions.delete().where(t.web_sessions.c.id_hash == id_hash))

    def delete_for_user(self, user: str) -> int:
        ended = self.conn.execute(t.web_sessions.delete().where(t.web_sessions.c.user_name == user))
        return int(ended.rowcount)


class DatabaseIdentityStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @staticmethod
    def _identity(row: Any) -> OidcIdentity:
        return OidcIdentity(
            row["issuer"],
            row["subject"],
            row["user_name"],
            row["email"],
            frozenset(row["groups"] or ()),
            row["signed_in_at"],
        )

    def by_subject(self, issuer: str, subject: str) -> OidcIdentity | None:
        i = t.oidc_identities
        row = (
            self.conn.execute(sa.select(i).where(i.c.issuer == issuer, i.c.subject == subject))
            .mappings()
            .first()
        )
        return None if row is None else self._identity(row)

    def by_name(self, user: str) -> OidcIdentity | None:
        i = t.oidc_identities
        row = self.conn.execute(sa.select(i).where(i.c.user_name == user)).mappings().first()
        return None if row is None else self._identity(row)

    def save(self, identity: OidcIdentity) -> None:
        i = t.oidc_identities
        values = {
            "user_name": identity.user,
            "email": identity.email,
            "groups": sorted(identity.groups),
            "signed_in_at": identity.signed_in_at,
        }
        done = self.conn.execute(
            i.update()
            .where(i.c.issuer == identity.issuer, i.c.subject == identity.subject)
            .values(**values)
        )
        if done.rowcount == 0:
            self.conn.execute(
                i.insert(), {"issuer": identity.issuer, "subject": identity.subject, **values}
            )

    def memberships(self) -> dict[str, frozenset[str]]:
        """Each group's members by their latest single sign-on."""
        i = t.oidc_identities
        found: dict[str, set[str]] = {}
        for name, mine in self.conn.execute(sa.select(i.c.user_name, i.c.groups)):
            for g in mine or ():
                found.setdefault(g, set()).add(name)
        return {g: frozenset(m) for g, m in found.items()}

    def begin_login(self, login: OidcLogin) -> None:
        self.conn.execute(
            t.oidc_logins.insert(),
            {
                "state": login.state,
                "browser_hash": login.browser_hash,
                "nonce": login.nonce,
                "verifier": login.verifier,
                "next_path": login.next_path,
                "created_at": login.created_at,
            },
        )

    def forget_logins(self, before: datetime) -> None:
        lg = t.oidc_logins
        self.conn.execute(lg.delete().where(lg.c.created_at < before))

    def take_login(self, state: str) -> OidcLogin | None:
        lg = t.oidc_logins
        row = self.conn.execute(sa.select(lg).where(lg.c.state == state)).mappings().first()
        if row is None:
            return None
        gone = self.conn.execute(lg.delete().where(lg.c.state == state))
        if gone.rowcount != 1:  # another callback spent it first
            return None
        return OidcLogin(
            row["state"],
            row["browser_hash"],
            row["nonce"],
            row["verifier"],
            row["next_path"],
            row["created_at"],
        )


class DatabaseGitHubDeliveries:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def find(
        self, delivery_id: str, repository: str, run_id: int, environment: str
    ) -> tuple[str, str] | None:
        g = t.github_deliveries
        found = self.conn.execute(
            sa.select(g.c.delivery_id, g.c.request_id)
            .where(
                sa.or_(
                    g.c.delivery_id == delivery_id,
                    sa.and_(
                        g.c.repository == repository,
                        g.c.run_id == run_id,
                        g.c.environment == environment,
                    ),
                )
            )
            .limit(1)
        ).first()
        return None if found is None else (str(found[0]), str(found[1]))

    def rerun(self, delivery: GitHubDelivery, earlier_request_id: str) -> bool:
        g = t.github_deliveries
        done = self.conn.execute(
            g.update()
            .where(
                g.c.repository == delivery.repository,
                g.c.run_id == delivery.run_id,
                g.c.environment == delivery.environment,
                g.c.request_id == earlier_request_id,
            )
            .values(
                delivery_id=delivery.delivery_id,
                received_at=delivery.received_at,
                installation_id=delivery.installation_id,
                request_id=delivery.request_id,
                reported_at=None,
            )
        )
        return bool(done.rowcount)

    def add(self, delivery: GitHubDelivery) -> bool:
        insert: Any
        if self.conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        row = {
            "delivery_id": delivery.delivery_id,
            "received_at": delivery.received_at,
            "repository": delivery.repository,
            "environment": delivery.environment,
            "run_id": delivery.run_id,
            "installation_id": delivery.installation_id,
            "request_id": delivery.request_id,
        }
        g = t.github_deliveries
        stmt = insert(g).values(row).on_conflict_do_nothing().returning(g.c.delivery_id)
        return self.conn.execute(stmt).first() is not None

    def waiting(self, request_id: str) -> bool:
        g = t.github_deliveries
        found = self.conn.execute(
            sa.select(g.c.delivery_id)
            .where(g.c.request_id == request_id, g.c.reported_at.is_(None))
            .limit(1)
        ).first()
        return found is not None


class DatabaseFlowLog:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(
        self, request_id: str, people: Iterable[str], kind: str, channel: str, at: datetime
    ) -> None:
        self.add_all([FlowEntry(request_id, tuple(people), kind, channel, at)])

    def add_all(self, entries: Iterable[FlowEntry]) -> None:
        rows = [
            {
                "request_id": e.request_id,
                "person": p,
                "kind": e.kind,
                "channel": e.channel,
                "at": e.at,
            }
            for e in entries
            for p in e.people
        ]
        if rows:
            self.conn.execute(t.flow_events.insert(), rows)

    def seen(self, request_id: str, person: str, channel: str, at: datetime) -> bool:
        f = t.flow_events
        before = self.conn.execute(
            sa.select(f.c.id)
            .where(f.c.request_id == request_id, f.c.kind == "seen", f.c.person == person)
            .limit(1)
        ).first()
        if before is not None:
            return False
        self.add(request_id, [person], "seen", channel, at)
        return True

    def tally(self, requester: str, action: Action, outcome: str, at: datetime) -> None:
        _tally_upsert(self.conn.dialect.name).execute(
            self.conn,
            {
                "requester": requester,
                "action_type": action.type,
                "day": at.astimezone(UTC).date(),
                "action_target": action.target,
                "outcome": outcome,
            },
        )

    def record(
        self, requester: str, action_type: str, since: datetime, until: datetime
    ) -> list[tuple[str, str, int]]:
        h = t.history_tallies
        rows = self.conn.execute(
            sa.select(h.c.action_target, h.c.outcome, sa.func.sum(h.c.n))
            .where(
                h.c.requester == requester,
                h.c.action_type == action_type,
                h.c.day >= since.astimezone(UTC).date(),
                h.c.day <= until.astimezone(UTC).date(),
            )
            .group_by(h.c.action_target, h.c.outcome)
        )
        return [(r[0], r[1], int(r[2])) for r in rows]

    def first_seen(self, requester: str) -> datetime | None:
        r = t.requests
        found: datetime | None = self.conn.execute(
            sa.select(r.c.created_at)
            .where(r.c.requester == requester)
            .order_by(r.c.created_at)
            .limit(1)
        ).scalar()
        return found


class DatabasePasskeyStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @staticmethod
    def _passkey(row: Any) -> Passkey:
        return Passkey(
            row["id"],
            row["user_name"],
            row["name"],
            bytes(row["credential_id"]),
            bytes(row["public_key"]),
            int(row["sign_count"]),
            row["created_at"],
            row["last_used_at"],
        )

    def add(self, passkey: Passkey) -> None:
        self.conn.execute(
            t.passkeys.insert(),
            {
                "id": passkey.id,
                "user_name": passkey.user,
                "name": passkey.name,
                "credential_id": passkey.credential_id,
                "public_key": passkey.public_key,
                "sign_count": passkey.sign_count,
                "created_at": passkey.created_at,
                "last_used_at": passkey.last_used_at,
            },
        )

    def for_user(self, user: str) -> builtins.list[Passkey]:
        p = t.passkeys
        rows = self.conn.execute(
            sa.select(p).where(p.c.user_name == user).order_by(p.c.created_at, p.c.id)
        ).mappings()
        return [self._passkey(r) for r in rows]

    def by_credential(self, credential_id: bytes) -> Passkey | None:
        p = t.passkeys
        row = (
            self.conn.execute(sa.select(p).where(p.c.credential_id == credential_id))
            .mappings()
            .first()
        )
        return None if row is None else self._passkey(row)

    def used(self, passkey_id: str, sign_count: int, at: datetime) -> None:
        p = t.passkeys
        self.conn.execute(
            p.update().where(p.c.id == passkey_id).values(sign_count=sign_count, last_used_at=at)
        )

    def remove(self, passkey_id: str) -> None:
        self.conn.execute(t.passkeys.delete().where(t.passkeys.c.id == passkey_id))

    def begin(self, challenge: PasskeyChallenge) -> None:
        self.conn.execute(
            t.passkey_challenges.insert(),
            {
                "challenge": challenge.challenge,
                "user_name": challenge.user,
                "purpose": challenge.purpose,
                "request_id": challenge.request_id,
                "decision": challenge.decision,
                "action_digest": challenge.action_digest,
                "created_at": challenge.created_at,
            },
        )

    def take(self, challenge: str) -> PasskeyChallenge | None:
        c = t.passkey_challenges
        row = self.conn.execute(sa.select(c).where(c.c.challenge == challenge)).mappings().first()
        if row is None:
            return None
        gone = self.conn.execute(c.delete().where(c.c.challenge == challenge))
        if gone.rowcount != 1:  # another vote spent it first
            return None
        return PasskeyChallenge(
            row["challenge"],
            row["user_name"],
            row["purpose"],
            row["created_at"],
            row["request_id"],
            row["decision"],
            row["action_digest"],
        )

    def forget(self, before: datetime) -> None:
        c = t.passkey_challenges
        self.conn.execute(c.delete().where(c.c.created_at < before))


@functools.cache
def _tally_upsert(dialect: str) -> Direct:
    """One more of an outcome in a requester's day: built once per dialect (a statement
    built per call cost more than running it)."""

    def build() -> Any:
        h = t.history_tallies
        insert: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        keys = ("requester", "action_type", "day", "action_target", "outcome")
        stmt = insert(h).values({**{k: sa.bindparam(k) for k in keys}, "n": 1})
        return stmt.on_conflict_do_update(
            index_elements=list(h.primary_key.columns), set_={"n": h.c.n + 1}
        )

    return Direct(build)


def _chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """``items`` in slices an ``IN (...)`` list of bound parameters can hold on any
    database."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


class DatabaseUnitOfWork:
    """One transaction. SQLite write transactions start with BEGIN IMMEDIATE (see
    ``engine.py``) so concurrent writers queue instead of failing to upgrade a lock."""

    def __init__(self, engine: Engine, write: bool = True, snapshot: bool = False) -> None:
        self.engine = engine
        self.write = write
        self.snapshot = snapshot
        self.touched: set[str] = set()
        self.outboxed = False

    def __enter__(self) -> DatabaseUnitOfWork:
        self._writer: _SqliteWriter | None = None
        self._group: _Group | None = None
        if self.write and self.engine.dialect.name == "sqlite":
            # one writer at a time, in a savepoint of a group's transaction (_SqliteWriter)
            self._writer = _sqlite_writer(self.engine)
            self._group = self._writer.enter(self.engine)
            conn = self._group.conn
            if not self._group.entered:  # nobody's work before this one's: no savepoint
                self._group.entered = True
                self.tx: sa.engine.Transaction = self._group.tx
            else:
                try:
                    self.tx = conn.begin_nested()
                except BaseException:
                    self._writer.leave(self._group, broken=True)
                    raise
        else:
            conn = self.engine.connect()
            if self.snapshot and conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            self.tx = conn.begin()
        self.conn = conn
        self.requests = DatabaseRequestRepository(conn)
        self.audit = DatabaseAuditLog(conn)
        self.outbox = DatabaseOutbox(conn)
        self.tokens = DatabaseTokenStore(conn)
        self.links = DatabaseLinkStore(conn)
        self.sessions = DatabaseSessionStore(conn)
        self.identities = DatabaseIdentityStore(conn)
        self.passkeys = DatabasePasskeyStore(conn)
        self.executions = DatabaseExecutionStore(conn)
        self.flow = DatabaseFlowLog(conn)
        self.github = DatabaseGitHubDeliveries(conn)
        self.flow_rows = DatabaseFlowRows(conn)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            if self._group is None:
                return  # left already, at commit
            group, self._group = self._group, None
            # the first writer's work is the whole group: it ends; others roll back to
            # their savepoint
            broken = self.tx is group.tx
            try:
                if not broken and self.tx.is_active:
                    self.tx.rollback()
            except BaseException:
                broken = True  # the group's members are told it failed
                raise
            finally:
                self._writer.leave(group, broken)
            return
        try:
            if self.tx.is_active:
                self.tx.rollback()
        finally:
            self.conn.close()

    def commit(self) -> None:
        if self.touched and self.conn.dialect.name == "postgresql":
            # Delivered by PostgreSQL when, and only if, this transaction commits:
            # other replicas wake their event streams for these requests.
            for rid in sorted(self.touched):
                _NOTIFY.execute(self.conn, {"rid": rid})
        if self._writer is None:
            self.tx.commit()
        elif self._group is not None:
            group, self._group = self._group, None
            if self.tx is not group.tx:
                try:
                    self.tx.commit()  # release this writer's savepoint into the group
                except BaseException:
                    self._writer.leave(group, broken=True)  # the others are told
                    raise
            group.members += 1
            if not self._writer.leave(group):
                group.done.wait()  # the group's last writer commits it
            if group.error is not None:
                # each writer its own exception (one raised in many threads would gather
                # their tracebacks), of the same kind
                raise copy.copy(group.error) from group.error
