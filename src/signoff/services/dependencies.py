"""What the use cases depend on, built once by ``bootstrap.build`` and never changed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from signoff.domain.actions import Action
from signoff.domain.identity import Directory
from signoff.domain.policy import PolicySet
from signoff.services.auth import PersonCache, TokenCache
from signoff.services.history import HistoryCache
from signoff.services.ports import (
    AccessTokenVerifier,
    Clock,
    EventBus,
    GrantSigner,
    NullObserver,
    Observer,
    PasskeyVerifier,
    TokenVerifier,
    UnitOfWorkFactory,
)


def _new_id() -> str:
    return str(uuid.uuid4())


def _no_check(action: Action) -> None:
    return None


def _no_wake() -> None:
    return None


@dataclass(frozen=True)
class Thresholds:
    """When a pattern becomes a finding (``SIGNOFF_FINDINGS_*``)."""

    min_reviews: int = 20  # reviews of a policy before "always approved" is said
    min_votes: int = 10  # votes of an approver before their habits are judged
    quick_seconds: float = 5.0  # an approval this soon after the first look is quick
    quick_share: float = 0.5  # ... and this share of quick approvals is a finding
    never_denies_votes: int = 20  # votes without a single denial
    timeout_share: float = 0.2  # reviews timed out or escalated
    notify_budget: int = 25  # asks delivered to one person in one day
    fold_count: int = 10  # identical asks folded by one requester


@dataclass(frozen=True)
class Services:
    """Everything the use cases depend on. Frozen: ``bootstrap.build`` makes it in one
    pass, and nothing replaces a part of it afterwards."""

    uow: UnitOfWorkFactory
    clock: Clock
    directory: Directory
    policies: PolicySet
    signer: GrantSigner
    bus: EventBus
    observer: Observer = field(default_factory=NullObserver)
    new_id: Callable[[], str] = _new_id
    token_cache: TokenCache = field(default_factory=TokenCache)
    max_pending: timedelta = timedelta(days=7)
    # The server's channels (SIGNOFF_CHANNELS), used when a policy names none.
    channels: tuple[str, ...] = ("log",)
    # Channels that keep one message per request up to date (Slack): told of every change.
    tracking_channels: frozenset[str] = frozenset()
    # Channels that reach each person on their own (email, direct messages).
    personal_channels: frozenset[str] = frozenset()
    # Feeds for other systems (webhooks): told even what a requester read in their answer.
    feed_channels: frozenset[str] = frozenset()
    # Raises InvalidInput when an action cannot run on its target as given (a configured
    # executor's check), so nobody is asked to approve what could not run.
    check_action: Callable[[Action], None] = _no_check
    # The configured targets: Signoff runs approved actions on these itself (gateway).
    targets: frozenset[str] = frozenset()
    # Machine tokens of trusted issuers (workload identity), when configured.
    workload: TokenVerifier | None = None
    # People may sign in by single sign-on (OIDC): their groups then come from the
    # directory and from their latest sign-in (stored), and approvers are found in both.
    single_sign_on: bool = False
    # People's access tokens from that provider (signoff login), when the CLI's client
    # is configured; and the people they stood for, recently.
    people_tokens: AccessTokenVerifier | None = None
    person_cache: PersonCache = field(default_factory=PersonCache)
    # Web sessions end after this long unused, and this long after sign-in at most.
    session_idle: timedelta = timedelta(hours=8)
    session_max: timedelta = timedelta(days=7)
    # Passkeys (WebAuthn) for the relying party of the public URL: enrollment and the
    # step-up of votes on stages with ``approve_with: passkey``.
    webauthn: PasskeyVerifier | None = None
    # Where people reach the web app (links in refusals: "finish on the web page ...").
    public_url: str = "http://127.0.0.1:8000"
    # Called after a commit that wrote outbox rows: the worker delivers at once rather
    # than at its next interval.
    wake_dispatcher: Callable[[], None] = _no_wake
    # Requesters' records read a moment ago (progressive trust conditions).
    history_cache: HistoryCache = field(default_factory=HistoryCache)
    # When the flow's patterns become findings (analytics).
    thresholds: Thresholds = field(default_factory=Thresholds)
    # GitHub deployments are gated (SIGNOFF_GITHUB_APP_ID): a decided request that a
    # workflow run waits for gets an outbox row for the ``github`` delivery.
    github: bool = False
