"""Reads: what the API, the event stream, the CLI, the pages and the channels show.

Apart from the use cases that change state. Every read that concerns one request
applies the domain's rule of who may see it (``Request.may_read``): a request a person
may not see is, to them, a request that does not exist (``NotFound``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from signoff.domain.audit import AuditEvent, ChainReport, verify_rows
from signoff.domain.errors import Forbidden, InvalidInput, NotFound
from signoff.domain.identity import User
from signoff.domain.replay import differences, replay
from signoff.domain.requests import Request
from signoff.services.dependencies import Services
from signoff.services.ports import (
    ApiToken,
    AuditQuery,
    Page,
    RequestBrief,
    UnitOfWork,
    UnitOfWorkFactory,
)


def find_request(uow: UnitOfWorkFactory, request_id: str) -> Request | None:
    """A request as it is now, whoever asks (channels render the present), or None."""
    with uow(write=False) as u:
        try:
            return u.requests.get(request_id)
        except NotFound:
            return None


def _visible(uow: UnitOfWork, user: User, request_id: str) -> Request:
    request = uow.requests.get(request_id)
    if not request.may_read(user.name, user.admin):
        raise NotFound(f"no request with id {request_id!r}")
    return request


ID_LENGTH = 36  # a request id is a UUID
MIN_PREFIX = 8  # like git: enough characters to be unambiguous in practice


def resolve_id(svc: Services, user: User, ref: str) -> str:
    """The full id of the request ``ref`` names: a whole id, or (like git) its first 8 or
    more characters when only one request this person may see starts with them."""
    ref = ref.strip().lower()
    if len(ref) >= ID_LENGTH:
        return ref
    if len(ref) < MIN_PREFIX:
        raise InvalidInput(
            f"{ref!r} is too short to name a request: give at least {MIN_PREFIX} characters "
            "of its id",
            field="request_id",
        )
    with svc.uow(write=False) as uow:
        found = []
        for rid in uow.requests.ids_starting(ref, 50):
            if uow.requests.get(rid).may_read(user.name, user.admin):
                found.append(rid)
    if not found:
        raise NotFound(f"no request with an id starting {ref!r}")
    if len(found) > 1:
        shown_ids = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise InvalidInput(
            f"{ref!r} names {len(found)} requests: {shown_ids}; give more of the id",
            field="request_id",
        )
    return found[0]


def request_for(svc: Services, user: User, request_id: str) -> Request:
    """One request, if this person may see it."""
    with svc.uow(write=False) as uow:
        return _visible(uow, user, request_id)


@dataclass(frozen=True)
class RequestHistory:
    request: Request
    events: list[AuditEvent]


def request_history(svc: Services, user: User, request_id: str, after: int = 0) -> RequestHistory:
    """A request and its audit events after ``after`` (its timeline), read together: in
    one snapshot, so the state agrees with the events (on PostgreSQL's default isolation
    a vote committed between the two reads gave its events with the state before it,
    and an event stream then carried "pending" with the approval and never said more)."""
    with svc.uow(write=False, snapshot=True) as uow:
        request = _visible(uow, user, request_id)
        events = list(uow.audit.events(after=after, request_id=request_id))
    return RequestHistory(request, events)


def list_requests(
    svc: Services,
    user: User,
    *,
    status: str | None = None,
    requester: str | None = None,
    awaiting: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """Requests newest first. Admins see all; anyone else the requests they asked for
    and those they were asked to vote on. ``awaiting='me'``: the viewer's inbox."""
    who = user.name if awaiting == "me" else awaiting
    with svc.uow(write=False) as uow:
        return uow.requests.list(
            status=status,
            requester=requester,
            awaiting=who,
            cursor=cursor,
            limit=limit,
            viewer=None if user.admin else user.name,
        )


@dataclass(frozen=True)
class Inbox:
    """One page of what awaits a person (the nearest deadline first), how many match
    the filters, how many await in all, and the values the filters can take."""

    items: list[Request]
    matching: int
    total: int
    policies: list[str]
    targets: list[str]
    requesters: list[str]


def inbox(
    svc: Services,
    user: User,
    keep: Callable[[RequestBrief], bool],
    offset: int = 0,
    limit: int = 100,
) -> Inbox:
    """What awaits ``user``'s vote, filtered by ``keep``, nearest deadline first (then
    oldest): a light query for all of it, then only the page shown is loaded."""
    with svc.uow(write=False) as uow:
        briefs = uow.requests.briefs(awaiting=user.name, viewer=None if user.admin else user.name)
        chosen = [b for b in briefs if keep(b)]
        far = datetime.max.replace(tzinfo=UTC)
        chosen.sort(key=lambda b: (b.deadline_at or far, b.created_at, b.id))
        shown = uow.requests.get_many([b.id for b in chosen[offset : offset + limit]])
    return Inbox(
        items=shown,
        matching=len(chosen),
        total=len(briefs),
        policies=sorted({b.policy for b in briefs}),
        targets=sorted({b.target for b in briefs}),
        requesters=sorted({b.requester for b in briefs}),
    )


def decided_by(svc: Services, user: User, limit: int = 100) -> list[Request]:
    """The requests this person voted on, most recent vote first (they were asked, so
    they may see them)."""
    with svc.uow(write=False) as uow:
        return uow.requests.get_many(uow.requests.voted_by(user.name, limit))


def count_awaiting(svc: Services, user: User) -> int:
    """How many pending requests await this person's vote (the inbox's count)."""
    with svc.uow(write=False) as uow:
        return uow.requests.count(awaiting=user.name, viewer=None if user.admin else user.name)


def executions_of(svc: Services, user: User, request_id: str) -> list[dict[str, Any]]:
    """What Signoff ran for a request, with outputs: for those who may execute it."""
    with svc.uow(write=False) as uow:
        request = _visible(uow, user, request_id)
        if not request.may_execute(user.name, user.admin):
            raise Forbidden("only those who may execute this request may read what ran")
        return uow.executions.for_request(request_id)


def audit_page(svc: Services, user: User, after: int = 0, limit: int = 100) -> list[AuditEvent]:
    user.require_admin("read the audit log")
    with svc.uow(write=False) as uow:
        return list(uow.audit.events(after=after, limit=limit))


def audit_search(
    svc: Services, user: User, query: AuditQuery, limit: int = 100
) -> list[AuditEvent]:
    """Audit events that match ``query``, newest first (the admin pages' audit log)."""
    user.require_admin("read the audit log")
    with svc.uow(write=False) as uow:
        return uow.audit.find(query, limit)


def verify_audit(svc: Services) -> ChainReport:
    """Walk the whole chain once, in sequence order, reading in one snapshot (streamed:
    memory stays flat whatever the log's length)."""
    with svc.uow(write=False, snapshot=True) as uow:
        head = uow.audit.head()
        return verify_rows(uow.audit.chain(), head)


@dataclass(frozen=True)
class StateReport:
    """Whether every stored request agrees with its own audit history."""

    ok: bool
    checked: int
    mismatches: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "mismatches": self.mismatches}


def verify_state(svc: Services, batch: int = 500, most: int = 100) -> StateReport:
    """Replay each request's audit events and compare with its stored state (status,
    votes, grant uses, revocation): finds tables edited behind the log's back. Walks the
    requests in id order, a batch per read; reports up to ``most`` mismatches."""
    mismatches: list[str] = []
    checked = 0
    after = ""
    while True:
        with svc.uow(write=False) as uow:
            ids = uow.requests.ids_after(after, batch)
            for rid in ids:
                request = uow.requests.get(rid)
                history = replay(uow.audit.events(request_id=rid))
                mismatches += differences(request, history)
                checked += 1
        if len(ids) < batch or len(mismatches) >= most:
            break
        after = ids[-1]
    return StateReport(not mismatches, checked, mismatches[:most])


@dataclass(frozen=True)
class AuditReport:
    chain: ChainReport
    state: StateReport

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.state.ok

    def as_dict(self) -> dict[str, Any]:
        return {**self.chain.as_dict(), "ok": self.ok, "state": self.state.as_dict()}


def full_audit(svc: Services) -> AuditReport:
    """The chain, then every request's state against its history."""
    return AuditReport(verify_audit(svc), verify_state(svc))


def audit_report(svc: Services, user: User) -> AuditReport:
    user.require_admin("verify the audit log")
    return full_audit(svc)


def outbox_rows(svc: Services, status: str | None, limit: int) -> list[dict[str, Any]]:
    with svc.uow(write=False) as uow:
        return uow.outbox.rows(status, limit)


def outbox_counts(svc: Services) -> dict[str, int]:
    with svc.uow(write=False) as uow:
        return uow.outbox.counts()


def api_tokens(svc: Services, user: User, limit: int = 500) -> list[ApiToken]:
    """API tokens newest first, never the token nor its hash: an admin sees everyone's,
    anyone else their own."""
    with svc.uow(write=False) as uow:
        return uow.tokens.list(None if user.admin else user.name, limit)


def never_signed_in(svc: Services, people: list[str]) -> bool:
    """True before anyone of ``people`` has an API token (the server's first start)."""
    with svc.uow(write=False) as uow:
        return all(uow.tokens.count_for(p) == 0 for p in people)


def due_queue(svc: Services) -> tuple[int, float]:
    """How many requests are overdue, and the age in seconds of the oldest (the worker's
    lag; 0 when it keeps up). For /readyz and /metrics."""
    now: datetime = svc.clock.now()
    with svc.uow(write=False) as uow:
        oldest, due = uow.requests.oldest_due(now)
    return due, (now - oldest).total_seconds() if oldest else 0.0


def export_audit(svc: Services, after: int = 0) -> Generator[AuditEvent, None, None]:
    """Every audit event after ``after``, streamed in sequence order."""
    with svc.uow(write=False) as uow:
        yield from uow.audit.events(after=after)
