"""What the use cases need from the outside world, as small interfaces."""

from __future__ import annotations

import base64
import builtins
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from signoff.domain.actions import Action
from signoff.domain.audit import AuditEvent, ChainRow
from signoff.domain.events import AuditedEvent
from signoff.domain.identity import User
from signoff.domain.requests import Request
from signoff.services.messages import Message


class GrantSigner(Protocol):
    """Issues and verifies the signed token of a request's grant."""

    def issue(self, request: Request) -> str: ...
    def verify(self, token: str) -> dict[str, Any]: ...


class Observer(Protocol):
    """Metrics hook: told of every committed decision."""

    def decided(self, request: Request) -> None: ...
    def submitted(self, request: Request) -> None: ...
    def fired(self, event: str) -> None: ...
    def delivery(self, channel: str, outcome: str) -> None: ...
    def executed(self, target: str, outcome: str, seconds: float) -> None: ...


class NullObserver:
    """An observer that records nothing (tools that run use cases without metrics)."""

    def decided(self, request: Request) -> None:
        pass

    def submitted(self, request: Request) -> None:
        pass

    def fired(self, event: str) -> None:
        pass

    def delivery(self, channel: str, outcome: str) -> None:
        pass

    def executed(self, target: str, outcome: str, seconds: float) -> None:
        pass


# What a channel may read of the present: the request as it is now, or None if unknown.
RequestReader = Callable[[str], Request | None]


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that only moves when told to (tests, benchmarks)."""

    current: datetime

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        from datetime import timedelta

        self.current = self.current + timedelta(**kwargs)


@dataclass(frozen=True)
class Page:
    items: list[Request]
    next_cursor: str | None


@dataclass(frozen=True)
class RequestBrief:
    """What an inbox needs to filter, count and order requests before loading them."""

    id: str
    requester: str
    target: str
    policy: str
    risk: str | None
    created_at: datetime
    deadline_at: datetime | None


class RequestRepository(Protocol):
    def add(self, request: Request) -> None: ...
    def get(self, request_id: str, for_update: bool = False) -> Request: ...
    def get_by_grant(self, grant_id: str, for_update: bool = False) -> Request: ...
    def save(self, request: Request, expected_version: int) -> None:
        """Store the request's state, votes and grant (its uses included). Raises
        Conflict if the request is no longer at ``expected_version`` (every change,
        each use of its grant included, moves the version)."""

    def claim_due(self, now: datetime, limit: int) -> list[str]: ...
    def pending_duplicate(self, requester: str, digest: str) -> str | None: ...
    def ids_after(self, after: str, limit: int) -> list[str]: ...
    def ids_starting(self, prefix: str, limit: int) -> list[str]: ...
    def statuses_of(self, request_ids: Iterable[str]) -> dict[str, str]:
        """The status of each of these requests that exists, in one read."""

    def oldest_due(self, now: datetime) -> tuple[datetime | None, int]: ...
    def list(
        self,
        *,
        status: str | None,
        requester: str | None,
        awaiting: str | None,
        cursor: str | None,
        limit: int,
        viewer: str | None = None,
    ) -> Page: ...
    def count(
        self,
        *,
        status: str | None = None,
        requester: str | None = None,
        awaiting: str | None = None,
        viewer: str | None = None,
    ) -> int: ...
    def get_many(self, ids: builtins.list[str]) -> builtins.list[Request]: ...
    def briefs(self, *, awaiting: str, viewer: str | None) -> builtins.list[RequestBrief]: ...
    def voted_by(self, person: str, limit: int) -> builtins.list[str]: ...


class AuditLog(Protocol):
    def append(self, at: datetime, request_id: str | None, event: AuditedEvent) -> AuditEvent:
        """Chain ``event`` (its actor, type and derived payload) onto the log."""
        ...

    def append_all(
        self, at: datetime, request_id: str | None, events: Sequence[AuditedEvent]
    ) -> list[AuditEvent]:
        """Chain several events in order, as ``append`` would one by one (one read of
        the head, one insert, one move of the head)."""
        ...

    def events(
        self, after: int = 0, request_id: str | None = None, limit: int | None = None
    ) -> Iterator[AuditEvent]: ...
    def chain(self) -> Iterator[ChainRow]:
        """Every event in sequence order, as stored (the rows ``verify_rows`` walks),
        streamed: memory does not grow with the log's length."""
        ...

    def head(self) -> tuple[int, str]: ...
    def find(self, query: AuditQuery, limit: int) -> list[AuditEvent]:
        """Up to ``limit`` events that match ``query``, newest first."""
        ...


@dataclass(frozen=True)
class AuditQuery:
    """Which audit events to read: every set field must match. ``since`` and ``until``
    bound the event's time (from ``since``, before ``until``); ``before`` and ``after``
    are the sequence numbers of a page's neighbours: the events just older than
    ``before``, or just newer than ``after``."""

    request_id: str | None = None
    actor: str | None = None
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None
    after: int | None = None


class Outbox(Protocol):
    def add(
        self,
        topic: str,
        request_id: str | None,
        payload: dict[str, Any],
        at: datetime,
        not_before: datetime | None = None,
    ) -> None: ...
    def claim(self, now: datetime, limit: int, lease: timedelta) -> list[Notification]: ...
    def delivered(self, outbox_ids: Sequence[int]) -> None:
        """Mark these rows delivered (one statement for up to 500 of them)."""

    def defer(self, outbox_id: int, at: datetime) -> None: ...
    def retry(self, outbox_id: int, at: datetime, error: str) -> None: ...
    def dead(self, outbox_id: int, error: str) -> None: ...
    def rows(self, status: str | None, limit: int) -> list[dict[str, Any]]: ...
    def counts(self) -> dict[str, int]: ...
    def requeue(self, outbox_id: int, at: datetime) -> Notification | None:
        """Put a dead letter back in the queue, due at ``at`` with its attempts counted
        from zero; the row as it was, or None if there is no such dead letter."""
        ...


@dataclass(frozen=True)
class ApiToken:
    """What may be shown of an API token: never the token, nor its hash."""

    id: str
    user: str
    label: str
    created_at: datetime
    revoked_at: datetime | None = None


class TokenStore(Protocol):
    def add(self, token_id: str, user: str, token_hash: str, label: str, at: datetime) -> None: ...
    def user_for(self, token_hash: str) -> str | None: ...
    def count_for(self, user: str) -> int: ...
    def list(self, user: str | None, limit: int) -> list[ApiToken]:
        """Tokens newest first: one person's, or (None) everyone's."""
        ...

    def get(self, token_id: str) -> ApiToken | None: ...
    def revoke(self, token_id: str, at: datetime) -> str | None:
        """Stop a token: the hash of the token revoked now, or None if there is no such
        token or it was revoked already."""
        ...

    def revoke_for_user(self, user: str, at: datetime) -> tuple[tuple[str, str], ...]:
        """Stop every active token of a person: the (id, hash) of each revoked now."""
        ...


class LinkStore(Protocol):
    def use(self, jti: str, at: datetime) -> bool: ...
    def used(self, jti: str) -> bool: ...


@dataclass(frozen=True)
class WebSession:
    """A person signed in to the web app: stored by the hash of its cookie value."""

    user: str
    csrf: str
    created_at: datetime
    last_seen_at: datetime


class SessionStore(Protocol):
    def add(self, id_hash: str, session: WebSession) -> None: ...
    def get(self, id_hash: str) -> WebSession | None: ...
    def touch(self, id_hash: str, at: datetime) -> None: ...
    def delete(self, id_hash: str) -> None: ...
    def delete_for_user(self, user: str) -> int:
        """End every session of a person: how many there were."""
        ...


@dataclass(frozen=True)
class OidcIdentity:
    """A person a single sign-on provider vouches for: (issuer, subject) is who they
    are; ``user`` the Signoff name bound to it at their first sign-in."""

    issuer: str
    subject: str
    user: str
    email: str | None
    groups: frozenset[str]
    signed_in_at: datetime


@dataclass(frozen=True)
class OidcLogin:
    """A single sign-in under way, kept until its callback spends it."""

    state: str
    browser_hash: str
    nonce: str
    verifier: str
    next_path: str
    created_at: datetime


class IdentityStore(Protocol):
    def by_subject(self, issuer: str, subject: str) -> OidcIdentity | None: ...
    def by_name(self, user: str) -> OidcIdentity | None: ...
    def save(self, identity: OidcIdentity) -> None: ...
    def memberships(self) -> dict[str, frozenset[str]]: ...
    def begin_login(self, login: OidcLogin) -> None: ...
    def take_login(self, state: str) -> OidcLogin | None: ...
    def forget_logins(self, before: datetime) -> None: ...


@dataclass(frozen=True)
class FlowEntry:
    """People who met a request in one way (``FlowLog.add``'s arguments)."""

    request_id: str
    people: tuple[str, ...]
    kind: str
    channel: str
    at: datetime


class FlowLog(Protocol):
    """How the approval flow went, for its analytics (``flow_events``)."""

    def add(
        self, request_id: str, people: Iterable[str], kind: str, channel: str, at: datetime
    ) -> None:
        """One row per person ("notified", "voted", "escalated" with no person: "")."""

    def add_all(self, entries: Iterable[FlowEntry]) -> None:
        """``add`` for several requests at once, in one statement."""

    def seen(self, request_id: str, person: str, channel: str, at: datetime) -> bool:
        """Record a person's first look at a request; False when they had looked before."""

    def tally(self, requester: str, action: Action, outcome: str, at: datetime) -> None:
        """Count one outcome (approved, executed, denied, incident) into a requester's
        record, on the day it happened."""

    def record(
        self, requester: str, action_type: str, since: datetime, until: datetime
    ) -> builtins.list[tuple[str, str, int]]:
        """A requester's record for one action type over [since, until), by day:
        (target, outcome, count) summed over the days."""

    def first_seen(self, requester: str) -> datetime | None:
        """When a requester first asked for anything."""


@dataclass(frozen=True)
class RequestRow:
    """A request as the flow's analytics read it."""

    id: str
    policy: str
    status: str
    requester: str
    created_at: datetime
    decided_at: datetime | None
    escalated: bool
    folds: int


@dataclass(frozen=True)
class FlowRows:
    """What a report reads for a window: the requests asked in it, and theirs."""

    requests: list[RequestRow]
    asks: list[tuple[str, str]]  # (request id, person asked to vote)
    votes: list[tuple[str, str, str, datetime]]  # (request id, voter, decision, at)
    events: list[tuple[str, str, str, str, datetime]]  # flow events of those requests
    notified: list[tuple[str, str, int]]  # (person, UTC day, asks delivered that day)


@dataclass(frozen=True)
class StoredAsk:
    """A stored request as replay reads it: what the policies judged."""

    id: str
    requester: str
    action: Action
    context: dict[str, Any]
    ticket: str | None
    created_at: datetime
    snapshot: dict[str, Any] | None


class FlowReader(Protocol):
    def rows(self, since: datetime, until: datetime, policy: str | None) -> FlowRows: ...
    def pending(self, limit: int) -> builtins.list[dict[str, Any]]: ...
    def pending_due(self, before: datetime, limit: int) -> builtins.list[dict[str, Any]]: ...
    def pending_count(self) -> int: ...
    def asks(self, since: datetime, until: datetime) -> Iterator[StoredAsk]:
        """The stored asks of a window, oldest first, read in batches."""


@dataclass(frozen=True)
class ProviderPerson:
    """A person as a valid access token of the single sign-on provider describes them
    (``signoff login``): who (issuer, subject), the name and email it gives, their
    groups already mapped to Signoff's, and when the token expires (epoch seconds)."""

    issuer: str
    subject: str
    name: str | None
    email: str | None
    groups: frozenset[str]
    expires_at: float


class AccessTokenVerifier(Protocol):
    """People's access tokens from the single sign-on provider (``signoff login``)."""

    issuer: str

    def accepts(self, token: str) -> bool: ...
    def verify_access_token(self, token: str) -> ProviderPerson: ...


@dataclass(frozen=True)
class Passkey:
    """A WebAuthn credential a person enrolled on their profile: ``credential_id`` and
    ``public_key`` as the authenticator made them, ``sign_count`` as last seen."""

    id: str
    user: str
    name: str
    credential_id: bytes
    public_key: bytes
    sign_count: int
    created_at: datetime
    last_used_at: datetime | None = None

    @property
    def short_id(self) -> str:
        """What the audit log and pages name it by: the first characters of its
        credential id (base64url), not a secret."""
        return base64.urlsafe_b64encode(self.credential_id).decode().rstrip("=")[:16]


@dataclass(frozen=True)
class PasskeyChallenge:
    """A WebAuthn challenge given out and not used yet: for an enrollment
    (``purpose`` "enroll"), or for one vote ("vote": bound to the request, the decision
    and the action's digest). Single-use; it lapses after a few minutes."""

    challenge: str  # base64url, as the browser's clientDataJSON carries it
    user: str
    purpose: str
    created_at: datetime
    request_id: str | None = None
    decision: str | None = None
    action_digest: str | None = None


class PasskeyStore(Protocol):
    def add(self, passkey: Passkey) -> None: ...
    def for_user(self, user: str) -> list[Passkey]: ...
    def by_credential(self, credential_id: bytes) -> Passkey | None: ...
    def used(self, passkey_id: str, sign_count: int, at: datetime) -> None: ...
    def remove(self, passkey_id: str) -> None: ...
    def begin(self, challenge: PasskeyChallenge) -> None: ...
    def take(self, challenge: str) -> PasskeyChallenge | None:
        """The challenge, spent (None if unknown or already spent)."""
        ...

    def forget(self, before: datetime) -> None: ...


class PasskeyVerifier(Protocol):
    """WebAuthn ceremonies for one relying party (the public URL's host and origin):
    the options the browser is given, and the checks of what it answers."""

    def registration_options(
        self, user: str, challenge: bytes, exclude: list[bytes]
    ) -> dict[str, Any]: ...
    def verify_registration(self, credential: str, challenge: bytes) -> tuple[bytes, bytes, int]:
        """(credential id, public key, sign count) of a new credential."""
        ...

    def authentication_options(self, challenge: bytes, allow: list[bytes]) -> dict[str, Any]: ...
    def verify_authentication(
        self, credential: str, challenge: bytes, public_key: bytes, sign_count: int
    ) -> int:
        """The new sign count of a valid assertion; PasskeyRefused otherwise."""
        ...

    def challenge_of(self, credential: str) -> tuple[str, bytes]:
        """The challenge (base64url) an answer signed, and the credential id it names."""
        ...


class TokenVerifier(Protocol):
    """Bearer tokens that are not Signoff's own API tokens (a pipeline's OIDC token)."""

    def accepts(self, token: str) -> bool: ...
    def verify(self, token: str) -> User: ...


@dataclass(frozen=True)
class GitHubDelivery:
    """A deployment protection rule GitHub asked about: which run waits, in which
    environment of which repository, through which App installation, and the request
    that decides it."""

    delivery_id: str
    repository: str  # OWNER/REPO
    environment: str
    run_id: int
    installation_id: int
    request_id: str
    received_at: datetime


class GitHubDeliveryStore(Protocol):
    def find(
        self, delivery_id: str, repository: str, run_id: int, environment: str
    ) -> tuple[str, str] | None:
        """(delivery id, request id) of this delivery, or of the delivery stored for the
        same run and environment; None if neither was received."""
        ...

    def rerun(self, delivery: GitHubDelivery, earlier_request_id: str) -> bool:
        """The run asks again (a re-run of its jobs: a new delivery, the same run and
        environment) after ``earlier_request_id`` was decided: its stored row now names
        this delivery and its request, not yet reported. False (nothing changed) if the
        row no longer names the earlier request (a concurrent twin re-pointed it)."""
        ...

    def add(self, delivery: GitHubDelivery) -> bool:
        """Store it; False (and nothing stored) if its id, or its run and environment,
        were received already."""
        ...

    def waiting(self, request_id: str) -> bool:
        """Whether a run on GitHub waits for this request's decision."""
        ...


class ExecutionStore(Protocol):
    def start(self, execution_id: str, request_id: str, actor: str, at: datetime) -> None: ...
    def finish(
        self,
        execution_id: str,
        at: datetime,
        ok: bool,
        summary: str,
        output_json: bytes,  # the canonical JSON of what is kept
        digest: str,
    ) -> None: ...
    def for_request(self, request_id: str) -> list[dict[str, Any]]: ...


class UnitOfWork(Protocol):
    @property
    def requests(self) -> RequestRepository: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def tokens(self) -> TokenStore: ...
    @property
    def links(self) -> LinkStore: ...
    @property
    def executions(self) -> ExecutionStore: ...
    @property
    def sessions(self) -> SessionStore: ...
    @property
    def identities(self) -> IdentityStore: ...
    @property
    def flow(self) -> FlowLog: ...
    @property
    def flow_rows(self) -> FlowReader: ...
    @property
    def passkeys(self) -> PasskeyStore: ...
    @property
    def github(self) -> GitHubDeliveryStore: ...
    @property
    def touched(self) -> set[str]: ...

    # set when this transaction wrote outbox rows: the dispatcher is woken after commit
    outboxed: bool

    def __enter__(self) -> UnitOfWork: ...
    def __exit__(self, *exc: object) -> None: ...
    def commit(self) -> None: ...


UnitOfWorkFactory = Callable[..., UnitOfWork]


class EventBus(Protocol):
    """Wakes whoever waits on a request when it changed (after commit)."""

    def publish(self, request_id: str) -> None: ...


@dataclass(frozen=True)
class Notification:
    """One outbox row, as a channel sees it."""

    id: int
    channel: str
    request_id: str | None
    payload: dict[str, Any]
    attempt: int

    @functools.cached_property
    def message(self) -> Message:
        """What the row says, typed (the payload is its JSON form); read once."""
        return Message.from_payload(self.payload)


class DeliveryError(Exception):
    """Delivery failed; the dispatcher retries with backoff, then dead-letters."""


class Channel(Protocol):
    name: str
    # True for channels that show one message per request and update it on every
    # change (Slack): they are sent every change, not only those addressed to someone.
    keeps_message_updated: bool
    # True for channels that reach each person on their own (mail, direct messages):
    # digests are gathered per person, and requesters may prefer them for their news.
    personal: bool

    def send(self, notification: Notification) -> None: ...


@runtime_checkable
class DigestChannel(Channel, Protocol):
    """A personal channel that can tell one person of several requests in one message."""

    def send_digest(self, person: str, notifications: list[Notification]) -> None: ...


@dataclass(frozen=True)
class ExecutionOutcome:
    """What an executor reports: success, a one-line summary, and the (masked) output."""

    ok: bool
    summary: str
    output: dict[str, Any]
    # False when it failed before the action could start (the target was unreachable,
    # the program could not be started): the use is given back.
    ran: bool = True
    # The canonical JSON of ``output`` (domain.actions.canonical_json), when whoever made
    # the outcome had it already (the scrubber encodes the output to look for secrets);
    # else the use case encodes it. Rows are encoded once, not for every use.
    encoded: bytes | None = None


class Executor(Protocol):
    """Performs approved actions on one target. Holds the target's credentials, which
    never leave it."""

    name: str
    kind: str

    def check(self, action: Action) -> None:
        """Raise InvalidInput if this target cannot run the action as given."""

    def run(self, action: Action, read_only: bool) -> ExecutionOutcome: ...
