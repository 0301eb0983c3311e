"""Test doubles of the storage ports: an in-memory unit of work (the cosmicpython way),
for service rules that are not about the database. Each records what a use case
stored, so tests assert on it, not on calls."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from signoff.adapters.directory_file import load_directory
from signoff.adapters.policy_files import load_policy_set
from signoff.domain.audit import GENESIS_HASH, AuditEvent, ChainRow, chain_next, format_time
from signoff.domain.errors import Conflict, NotFound
from signoff.domain.events import AuditedEvent
from signoff.domain.requests import Request, Status
from signoff.services.dependencies import Services
from signoff.services.ports import (
    ApiToken,
    AuditQuery,
    FixedClock,
    Notification,
    Page,
    Passkey,
    PasskeyChallenge,
    WebSession,
)

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class OutboxRow:
    topic: str
    request_id: str | None
    payload: dict[str, Any]
    at: datetime
    not_before: datetime | None
    status: str = "pending"
    attempts: int = 0


@dataclass
class Store:
    """What a fake database holds: committed state only."""

    requests: dict[str, Request] = field(default_factory=dict)
    audit: list[AuditEvent] = field(default_factory=list)
    outbox: list[OutboxRow] = field(default_factory=list)
    tokens: dict[str, ApiToken] = field(default_factory=dict)  # by the token's hash
    links: set[str] = field(default_factory=set)
    sessions: dict[str, WebSession] = field(default_factory=dict)
    # (request id, person, kind, channel, at)
    flow: list[tuple[str, str, str, str, datetime]] = field(default_factory=list)
    passkeys: dict[str, Passkey] = field(default_factory=dict)
    challenges: dict[str, PasskeyChallenge] = field(default_factory=dict)


class FakeRequests:
    def __init__(self, staged: dict[str, Request]) -> None:
        self.staged = staged

    def add(self, request: Request) -> None:
        self.staged[request.id] = copy.deepcopy(request)

    def get(self, request_id: str, for_update: bool = False) -> Request:
        if request_id not in self.staged:
            raise NotFound(f"no request with id {request_id!r}")
        return copy.deepcopy(self.staged[request_id])

    def get_by_grant(self, grant_id: str, for_update: bool = False) -> Request:
        for r in self.staged.values():
            if r.grant is not None and r.grant.id == grant_id:
                return copy.deepcopy(r)
        raise NotFound(f"no grant with id {grant_id!r}")

    def save(self, request: Request, expected_version: int) -> None:
        if self.staged[request.id].version != expected_version:
            raise Conflict(f"request {request.id} was changed concurrently; try again")
        self.staged[request.id] = copy.deepcopy(request)

    def pending_duplicate(self, requester: str, digest: str) -> str | None:
        twins = [
            r
            for r in self.staged.values()
            if r.requester == requester and r.action_digest == digest and r.status is Status.PENDING
        ]
        return min(twins, key=lambda r: r.created_at).id if twins else None

    def statuses_of(self, request_ids: Iterable[str]) -> dict[str, str]:
        found = (self.staged.get(rid) for rid in request_ids)
        return {r.id: r.status.value for r in found if r is not None}

    def claim_due(self, now: datetime, limit: int) -> list[str]:
        due = [r for r in self.staged.values() if r.next_due_at and r.next_due_at <= now]
        return [r.id for r in sorted(due, key=lambda r: r.next_due_at or now)][:limit]

    def oldest_due(self, now: datetime) -> tuple[datetime | None, int]:
        due = [
            r.next_due_at for r in self.staged.values() if r.next_due_at and r.next_due_at <= now
        ]
        return (min(due), len(due)) if due else (None, 0)

    def voted_by(self, person: str, limit: int) -> list[str]:  # pragma: no cover
        raise NotImplementedError

    def count(self, **kwargs: Any) -> int:  # pragma: no cover - reads live in views tests
        raise NotImplementedError

    def list(self, **kwargs: Any) -> Page:  # pragma: no cover - reads live in views tests
        raise NotImplementedError


class FakeAudit:
    def __init__(self, staged: list[AuditEvent]) -> None:
        self.staged = staged

    def append(self, at: datetime, request_id: str | None, event: AuditedEvent) -> AuditEvent:
        seq, prev = self.head()
        ev = chain_next(seq, prev, at, event.actor, event.type, request_id, event.payload())
        self.staged.append(ev)
        return ev

    def append_all(
        self, at: datetime, request_id: str | None, events: Sequence[AuditedEvent]
    ) -> list[AuditEvent]:
        return [self.append(at, request_id, e) for e in events]

    def events(
        self, after: int = 0, request_id: str | None = None, limit: int | None = None
    ) -> Iterator[AuditEvent]:
        found = [
            e
            for e in self.staged
            if e.seq > after and (request_id is None or e.request_id == request_id)
        ]
        return iter(found[:limit] if limit is not None else found)

    def chain(self) -> Iterator[ChainRow]:
        for e in self.staged:
            yield (e.seq, e.at, e.actor, e.type, e.request_id, e.payload, e.prev_hash, e.hash)

    def head(self) -> tuple[int, str]:
        return (self.staged[-1].seq, self.staged[-1].hash) if self.staged else (0, GENESIS_HASH)

    def find(self, query: AuditQuery, limit: int) -> list[AuditEvent]:
        since = format_time(query.since) if query.since else None
        until = format_time(query.until) if query.until else None
        found = [
            e
            for e in self.staged
            if (query.request_id is None or e.request_id == query.request_id)
            and (query.actor is None or e.actor == query.actor)
            and (query.type is None or e.type == query.type)
            and (since is None or e.at >= since)
            and (until is None or e.at < until)
            and (query.before is None or e.seq < query.before)
            and (query.after is None or e.seq > query.after)
        ]
        if query.after is not None:
            return found[:limit][::-1]
        return found[::-1][:limit]


class FakeOutbox:
    def __init__(self, staged: list[OutboxRow]) -> None:
        self.staged = staged

    def add(
        self,
        topic: str,
        request_id: str | None,
        payload: dict[str, Any],
        at: datetime,
        not_before: datetime | None = None,
    ) -> None:
        self.staged.append(OutboxRow(topic, request_id, payload, at, not_before))

    def claim(self, now: datetime, limit: int, lease: timedelta) -> list[Notification]:
        raise NotImplementedError  # the dispatcher is tested on real databases

    def requeue(self, outbox_id: int, at: datetime) -> Notification | None:
        """Row ids are positions from 1, as the database's serial numbers them."""
        if not 1 <= outbox_id <= len(self.staged) or self.staged[outbox_id - 1].status != "dead":
            return None
        row = self.staged[outbox_id - 1]
        self.staged[outbox_id - 1] = replace(row, status="pending", attempts=0, not_before=at)
        return Notification(outbox_id, row.topic, row.request_id, row.payload, row.attempts)


class FakeTokens:
    def __init__(self, staged: dict[str, ApiToken]) -> None:
        self.staged = staged

    def add(self, token_id: str, user: str, token_hash: str, label: str, at: datetime) -> None:
        self.staged[token_hash] = ApiToken(token_id, user, label, at)

    def user_for(self, token_hash: str) -> str | None:
        hit = self.staged.get(token_hash)
        return hit.user if hit and hit.revoked_at is None else None

    def count_for(self, user: str) -> int:
        return sum(1 for t in self.staged.values() if t.user == user)

    def list(self, user: str | None, limit: int) -> list[ApiToken]:
        found = [t for t in self.staged.values() if user is None or t.user == user]
        return sorted(found, key=lambda t: t.created_at, reverse=True)[:limit]

    def get(self, token_id: str) -> ApiToken | None:
        return next((t for t in self.staged.values() if t.id == token_id), None)

    def revoke(self, token_id: str, at: datetime) -> str | None:
        for token_hash, t in self.staged.items():
            if t.id == token_id and t.revoked_at is None:
                self.staged[token_hash] = replace(t, revoked_at=at)
                return token_hash
        return None

    def revoke_for_user(self, user: str, at: datetime) -> tuple[tuple[str, str], ...]:
        revoked = []
        for token_hash, t in list(self.staged.items()):
            if t.user == user and t.revoked_at is None:
                self.staged[token_hash] = replace(t, revoked_at=at)
                revoked.append((t.id, token_hash))
        return tuple(sorted(revoked))


class FakeLinks:
    def __init__(self, staged: set[str]) -> None:
        self.staged = staged

    def use(self, jti: str, at: datetime) -> bool:
        if jti in self.staged:
            return False
        self.staged.add(jti)
        return True

    def used(self, jti: str) -> bool:
        return jti in self.staged


class FakeSessions:
    def __init__(self, staged: dict[str, WebSession]) -> None:
        self.staged = staged

    def add(self, id_hash: str, session: WebSession) -> None:
        self.staged[id_hash] = session

    def get(self, id_hash: str) -> WebSession | None:
        return self.staged.get(id_hash)

    def touch(self, id_hash: str, at: datetime) -> None:
        if id_hash in self.staged:
            self.staged[id_hash] = replace(self.staged[id_hash], last_seen_at=at)

    def delete(self, id_hash: str) -> None:
        self.staged.pop(id_hash, None)

    def delete_for_user(self, user: str) -> int:
        mine = [k for k, s in self.staged.items() if s.user == user]
        for k in mine:
            del self.staged[k]
        return len(mine)


class FakeFlow:
    def __init__(self, staged: list[tuple[str, str, str, str, datetime]]) -> None:
        self.staged = staged
        self.tallies: list[tuple[str, str, str, str, datetime]] = []  # this transaction

    def add(
        self, request_id: str, people: Iterable[str], kind: str, channel: str, at: datetime
    ) -> None:
        self.staged += [(request_id, p, kind, channel, at) for p in people]

    def add_all(self, entries: Iterable[Any]) -> None:
        for e in entries:
            self.add(e.request_id, e.people, e.kind, e.channel, e.at)

    def seen(self, request_id: str, person: str, channel: str, at: datetime) -> bool:
        if any(r[:3] == (request_id, person, "seen") for r in self.staged):
            return False
        self.add(request_id, [person], "seen", channel, at)
        return True

    def tally(self, requester: str, action: Any, outcome: str, at: datetime) -> None:
        self.tallies.append((requester, action.type, action.target, outcome, at))

    def record(
        self, requester: str, action_type: str, since: datetime, until: datetime
    ) -> list[tuple[str, str, int]]:
        found: dict[tuple[str, str], int] = {}
        for who, kind, target, outcome, at in self.tallies:
            if (who, kind) == (requester, action_type) and (
                since.date() <= at.date() <= until.date()
            ):
                found[(target, outcome)] = found.get((target, outcome), 0) + 1
        return [(t, o, n) for (t, o), n in found.items()]

    def first_seen(self, requester: str) -> datetime | None:
        return None


class FakePasskeys:
    def __init__(self, staged: dict[str, Passkey], challenges: dict[str, PasskeyChallenge]) -> None:
        self.staged = staged
        self.challenges = challenges

    def add(self, passkey: Passkey) -> None:
        self.staged[passkey.id] = passkey

    def for_user(self, user: str) -> list[Passkey]:
        return sorted((p for p in self.staged.values() if p.user == user), key=lambda p: p.id)

    def by_credential(self, credential_id: bytes) -> Passkey | None:
        return next((p for p in self.staged.values() if p.credential_id == credential_id), None)

    def used(self, passkey_id: str, sign_count: int, at: datetime) -> None:
        found = self.staged[passkey_id]
        self.staged[passkey_id] = replace(found, sign_count=sign_count, last_used_at=at)

    def remove(self, passkey_id: str) -> None:
        self.staged.pop(passkey_id, None)

    def begin(self, challenge: PasskeyChallenge) -> None:
        self.challenges[challenge.challenge] = challenge

    def take(self, challenge: str) -> PasskeyChallenge | None:
        return self.challenges.pop(challenge, None)

    def forget(self, before: datetime) -> None:
        for k, c in list(self.challenges.items()):
            if c.created_at < before:
                del self.challenges[k]


class FakeUnitOfWork:
    """One transaction over a ``Store``: changes are staged on copies and land in the
    store only on ``commit`` (a use case that raises leaves the store as it was)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.touched: set[str] = set()
        self.outboxed = False
        self.committed = False

    def __enter__(self) -> FakeUnitOfWork:
        s = self.store
        self._requests = dict(s.requests)
        self._audit = list(s.audit)
        self._outbox = list(s.outbox)
        self._tokens = dict(s.tokens)
        self._links = set(s.links)
        self._sessions = dict(s.sessions)
        self._passkeys = dict(s.passkeys)
        self._challenges = dict(s.challenges)
        self.requests = FakeRequests(self._requests)
        self.audit = FakeAudit(self._audit)
        self.outbox = FakeOutbox(self._outbox)
        self.tokens = FakeTokens(self._tokens)
        self.links = FakeLinks(self._links)
        self.sessions = FakeSessions(self._sessions)
        self._flow = list(s.flow)
        self.flow = FakeFlow(self._flow)
        self.passkeys = FakePasskeys(self._passkeys, self._challenges)
        self.executions = None
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def commit(self) -> None:
        s = self.store
        s.requests, s.audit, s.outbox = self._requests, self._audit, self._outbox
        s.tokens, s.links, s.sessions = self._tokens, self._links, self._sessions
        s.flow = self._flow
        s.passkeys, s.challenges = self._passkeys, self._challenges
        self.committed = True


@dataclass
class Recorder:
    """Records what a use case published after commit."""

    published: list[str] = field(default_factory=list)
    wakes: int = 0

    def publish(self, request_id: str) -> None:
        self.published.append(request_id)

    def wake(self) -> None:
        self.wakes += 1


class FakeSigner:
    def issue(self, request: Request) -> str:
        assert request.grant is not None
        return f"grant:{request.id}:{request.grant.id}"

    def verify(self, token: str) -> dict[str, Any]:
        _, rid, jti = token.split(":")
        return {"rid": rid, "jti": jti}


def fake_services(
    store: Store,
    clock: FixedClock,
    recorder: Recorder | None = None,
    policies: Path = FIXTURES / "policies",
    users: Path = FIXTURES / "users.yaml",
    **overrides: Any,
) -> Services:
    """Services on the fake store, with the fixture policies and users."""
    directory = load_directory(users)
    ids = iter(f"id-{n}" for n in range(1, 1_000_000))
    rec = recorder or Recorder()
    values: dict[str, Any] = {
        "uow": lambda write=True, snapshot=False: FakeUnitOfWork(store),
        "clock": clock,
        "directory": directory,
        "policies": load_policy_set(policies, directory),
        "signer": FakeSigner(),
        "bus": rec,
        "new_id": lambda: next(ids),
        "wake_dispatcher": rec.wake,
    }
    values.update(overrides)
    return Services(**values)
