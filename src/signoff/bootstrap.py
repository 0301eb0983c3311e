"""Builds the object graph from settings, in one pass. The only place that does: what
``build`` returns is finished, and nothing replaces a part of it afterwards."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from signoff.adapters.oidc import OidcProvider

from signoff.adapters.channels.log import LogChannel
from signoff.adapters.channels.messages import VoteLinks
from signoff.adapters.checkpoints import build_sinks, signature_ok
from signoff.adapters.checkpoints import sign as sign_checkpoint
from signoff.adapters.db.engine import create_db_engine, upgrade
from signoff.adapters.db.repositories import DatabaseUnitOfWork
from signoff.adapters.directory_file import load_directory
from signoff.adapters.event_bus import InProcessEventBus
from signoff.adapters.metrics import PrometheusObserver
from signoff.adapters.policy_files import load_policy_set
from signoff.adapters.signing import Ed25519GrantSigner, KeyRing, VoteLinkSigner
from signoff.adapters.targets_file import TargetSet, load_target_set
from signoff.adapters.webauthn import WebAuthnPasskeys
from signoff.adapters.workload import load_workload
from signoff.config import Settings
from signoff.domain.audit import Checkpoint
from signoff.domain.durations import parse_duration
from signoff.domain.errors import DatabaseUnavailable, InvalidInput, PolicyError, PolicyProblem
from signoff.domain.identity import Directory, User
from signoff.domain.policy import PolicySet
from signoff.domain.quiet_hours import QuietHours
from signoff.services import sessions, views
from signoff.services.anchoring import CheckpointSink, check_checkpoints, write_checkpoint
from signoff.services.dependencies import Services, Thresholds
from signoff.services.dispatcher import DispatchResult, RetryPolicy, dispatch_due
from signoff.services.history import HistoryCache
from signoff.services.ports import Channel, Clock, Executor, RequestReader, SystemClock
from signoff.services.recording import GITHUB
from signoff.services.scheduler import DeadlineWorker


@dataclass(frozen=True)
class App:
    """The running application: the use cases' dependencies and the parts that the
    entrypoints (server, worker, CLI) start, stop and read."""

    settings: Settings
    engine: Engine
    services: Services
    keys: KeyRing
    bus: InProcessEventBus
    directory: Directory
    # What the dispatcher delivers to: the configured channels, and the ``github``
    # delivery when a GitHub App is configured (not a channel policies choose).
    channels: Mapping[str, Channel]
    retry: RetryPolicy
    links: VoteLinkSigner
    quiet: Mapping[str, QuietHours]
    executors: Mapping[str, Executor]
    observer: PrometheusObserver
    checkpoint_sinks: Sequence[CheckpointSink]
    # Set after a commit that wrote outbox rows; the worker delivers at once.
    dispatch_wanted: threading.Event
    # Single sign-on for the web app (SIGNOFF_OIDC_ISSUER), when configured.
    oidc: OidcProvider | None = None

    @property
    def policy_set(self) -> PolicySet:
        return self.services.policies

    def dispatch(self, limit: int = 50) -> DispatchResult:
        """Deliver one batch of due notifications."""
        return dispatch_due(self.services, self.channels, self.retry, limit, self.quiet)

    def checkpoint(self, by: User | None = None) -> Checkpoint | None:
        """Sign the audit chain's head now and write it to the checkpoint sinks (``by``:
        the person asking, who must be an admin; None for the worker and the CLI)."""
        key = self.keys.private(self.keys.active_kid)
        return write_checkpoint(
            self.services,
            lambda c: sign_checkpoint(c, key),
            self.checkpoint_sinks,
            self.keys.active_kid,
            by,
        )

    def signin_link(self, person: str, next_path: str = "") -> str:
        """A one-time link that signs ``person`` in to the web app (single-use, expires
        after ``SIGNOFF_SIGNIN_LINK_TTL``)."""
        # NotFound names an unknown person; a disabled one is refused (and so is the link)
        self.directory.user(person).require_enabled("sign in")
        expires = self.services.clock.now() + parse_duration(self.settings.signin_link_ttl)
        token = self.links.issue_signin(person, expires)
        where = f"?next={quote(next_path, safe='/')}" if next_path else ""
        return f"{self.settings.public_url.rstrip('/')}/signin/{token}{where}"

    def check_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> list[str]:
        """How the chain disagrees with checkpoints kept elsewhere (empty: it agrees)."""
        publics = self.keys.signing_publics()
        return check_checkpoints(self.services, checkpoints, lambda c: signature_ok(c, publics))

    def worker(self) -> DeadlineWorker:
        s = self.settings
        every: list[tuple[float, Callable[[], object]]] = []
        if self.checkpoint_sinks:
            every.append((parse_duration(s.checkpoint_every).total_seconds(), self.checkpoint))
        return DeadlineWorker(
            self.services,
            s.worker_interval_seconds,
            s.worker_batch,
            self.dispatch,
            wake=self.dispatch_wanted,
            every=every,
        )

    def close(self) -> None:
        for part in (*self.channels.values(), *self.executors.values()):
            close = getattr(part, "close", None)
            if close is not None:
                close()
        self.engine.dispose()


def build_channels(
    settings: Settings,
    directory: Directory,
    links: VoteLinkSigner,
    clock: Clock,
    read_request: RequestReader,
    engine: Engine,
) -> dict[str, Channel]:
    """The configured channels by name; an unknown name is a configuration error."""
    channels: dict[str, Channel] = {}
    vote_links = VoteLinks(links, clock.now, settings.public_url, parse_duration(settings.link_ttl))

    def slack_client() -> WebClient:
        from slack_sdk import WebClient

        return WebClient(token=settings.slack_token, base_url=settings.slack_api_url)

    for name in (n.strip() for n in settings.channels.split(",") if n.strip()):
        kind, _, rest = name.partition(":")
        if name == "log":
            channels[name] = LogChannel()
        elif name == "email":
            from signoff.adapters.channels.email import EmailChannel

            channels[name] = EmailChannel(
                directory=directory,
                vote_links=vote_links,
                public_url=settings.public_url,
                sender=settings.mail_from,
                host=settings.smtp_host,
                port=settings.smtp_port,
                starttls=settings.smtp_starttls,
                use_tls=settings.smtp_tls,
                username=settings.smtp_username,
                password=settings.smtp_password,
            )
        elif name == "slack:dm":
            from signoff.adapters.channels.slack import MessageRefs, SlackDirectChannel, SlackPeople

            client = slack_client()
            channels[name] = SlackDirectChannel(
                client,
                read_request,
                MessageRefs(engine),
                settings.public_url,
                SlackPeople(client, directory, settings.slack_users),
            )
        elif kind == "slack" and rest:
            from signoff.adapters.channels.slack import MessageRefs, SlackChannel

            channels[name] = SlackChannel(
                name, slack_client(), read_request, MessageRefs(engine), settings.public_url
            )
        elif name == "teams:dm":
            from signoff.adapters.channels.teams import TeamsDirectChannel

            channels[name] = TeamsDirectChannel(directory, vote_links, settings.public_url)
        elif kind == "teams" and rest in settings.teams_webhooks:
            from signoff.adapters.channels.teams import TeamsRoomChannel

            channels[name] = TeamsRoomChannel(
                name, settings.teams_webhooks[rest], settings.public_url
            )
        elif kind == "apprise" and rest in settings.apprise:
            from signoff.adapters.channels.apprise_channel import AppriseChannel

            try:
                channels[name] = AppriseChannel(name, settings.apprise[rest], settings.public_url)
            except ValueError as exc:
                raise InvalidInput(f"SIGNOFF_APPRISE: {exc}") from None
        elif kind == "webhook" and rest in settings.webhooks:
            from signoff.adapters.channels.webhook import WebhookChannel

            hook = settings.webhooks[rest]
            channels[name] = WebhookChannel(name, hook.url, hook.secret)
        else:
            raise InvalidInput(
                f"unknown channel {name!r} in SIGNOFF_CHANNELS: use 'log', 'email', "
                "'slack:#channel', 'slack:dm', 'teams:dm', 'teams:NAME' (a key of "
                "SIGNOFF_TEAMS_WEBHOOKS), 'apprise:NAME' (a key of SIGNOFF_APPRISE) or "
                "'webhook:NAME' (a key of SIGNOFF_WEBHOOKS)"
            )
    return channels


def quiet_hours(settings: Settings, channels: Mapping[str, Channel]) -> dict[str, QuietHours]:
    out = {}
    for name, text in settings.quiet_hours.items():
        if name not in channels:
            raise InvalidInput(
                f"SIGNOFF_QUIET_HOURS names {name!r}, which is not a configured channel "
                f"(SIGNOFF_CHANNELS: {', '.join(channels) or 'none'})"
            )
        try:
            out[name] = QuietHours.parse(text)
        except ValueError as exc:
            raise InvalidInput(f"SIGNOFF_QUIET_HOURS[{name!r}]: {exc}") from None
    return out


def github_delivery(settings: Settings, engine: Engine) -> Channel | None:
    """The ``github`` delivery that answers waiting workflow runs, when a GitHub App is
    configured (SIGNOFF_GITHUB_APP_ID); its key and webhook secret are then required."""
    if not settings.github_app_id:
        return None
    if not settings.github_webhook_secret.get_secret_value():
        raise InvalidInput(
            "SIGNOFF_GITHUB_APP_ID is set: SIGNOFF_GITHUB_WEBHOOK_SECRET must be too"
        )
    from signoff.adapters.github import (
        DeploymentGates,
        GitHubApp,
        GitHubDeploymentChannel,
        load_private_key,
    )

    key = load_private_key(
        settings.github_private_key_file, settings.github_private_key.get_secret_value()
    )
    app = GitHubApp(settings.github_app_id, key, settings.github_api_url)
    return GitHubDeploymentChannel(app, DeploymentGates(engine), settings.public_url)


def oidc_provider(settings: Settings) -> OidcProvider | None:
    """The OpenID provider people sign in with, when SIGNOFF_OIDC_ISSUER names one."""
    if not settings.oidc_issuer:
        return None
    if not settings.oidc_client_id:
        raise InvalidInput("SIGNOFF_OIDC_ISSUER is set: SIGNOFF_OIDC_CLIENT_ID must be too")
    if settings.oidc_cli_client_id and "openid" not in settings.oidc_cli_scopes.split():
        raise InvalidInput("SIGNOFF_OIDC_CLI_SCOPES must include 'openid'")
    if "openid" not in settings.oidc_scopes.split():
        raise InvalidInput("SIGNOFF_OIDC_SCOPES must include 'openid'")
    from signoff.adapters.oidc import OidcProvider  # httpx and Authlib: only when used

    return OidcProvider(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        scopes=settings.oidc_scopes,
        name_claim=settings.oidc_name_claim,
        groups_claim=settings.oidc_groups_claim,
        display_name=settings.oidc_provider_name,
        group_map=settings.oidc_group_map,
        cli_client_id=settings.oidc_cli_client_id,
        cli_scopes=settings.oidc_cli_scopes,
        audience=settings.oidc_audience,
    )


def load_rules(settings: Settings) -> tuple[Directory, PolicySet]:
    """Users, groups and policies; raises PolicyError listing every problem."""
    directory = load_directory(settings.users_file)
    return directory, load_policy_set(settings.policies_dir, directory)


def build(
    settings: Settings,
    clock: Clock | None = None,
    migrate: bool = True,
) -> App:
    """The whole object graph, from settings. Raises PolicyError or InvalidInput (with
    every problem named) when the policies, users, targets or channels are wrong."""
    clock = clock or SystemClock()
    oidc = oidc_provider(settings)
    directory, policy_set = load_rules(settings)
    unknown = sorted(set(settings.oidc_group_map.values()) - set(directory.groups))
    if oidc is not None and unknown:
        raise InvalidInput(
            f"SIGNOFF_OIDC_GROUP_MAP maps to {', '.join(map(repr, unknown))}, not a group of "
            f"{settings.users_file} (declare it there, empty if need be)"
        )
    target_set = load_target_set(settings.targets_file)
    engine = create_db_engine(
        settings.effective_database_url(), settings.db_pool_size, settings.sqlite_synchronous
    )
    try:
        return _assemble(settings, clock, directory, policy_set, target_set, engine, migrate, oidc)
    except sa_exc.DBAPIError as exc:
        engine.dispose()
        raise database_unavailable(engine, exc) from None
    except BaseException:
        engine.dispose()
        raise


def database_unavailable(engine: Engine, exc: sa_exc.DBAPIError) -> DatabaseUnavailable:
    """One line that names the database (its password hidden) and the driver's reason,
    scrubbed of the password too."""
    url = engine.url
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return DatabaseUnavailable(
        f"cannot use the database at {url.render_as_string(hide_password=True)}: {reason}"
    )


def _assemble(
    settings: Settings,
    clock: Clock,
    directory: Directory,
    policy_set: PolicySet,
    target_set: TargetSet,
    engine: Engine,
    migrate: bool,
    oidc: OidcProvider | None = None,
) -> App:
    executors = target_set.executors
    if migrate:
        upgrade(engine)
    keys = KeyRing(engine, clock.now, settings.effective_signing_keys_file(), settings.signing_keys)
    keys.ensure_key()

    def uow(write: bool = True, snapshot: bool = False) -> DatabaseUnitOfWork:
        return DatabaseUnitOfWork(engine, write, snapshot)

    links = VoteLinkSigner(keys, clock.now)
    channels = build_channels(
        settings, directory, links, clock, lambda rid: views.find_request(uow, rid), engine
    )
    check_configured_channels(settings, policy_set, directory, channels)
    quiet = quiet_hours(settings, channels)
    deliveries: dict[str, Channel] = dict(channels)
    github = github_delivery(settings, engine)
    if github is not None:  # not a channel policies choose: only decisions GitHub awaits
        deliveries[GITHUB] = github
    checkpoint_sinks = build_sinks(settings.checkpoints)
    bus = InProcessEventBus()
    observer = PrometheusObserver()
    dispatch_wanted = threading.Event()
    services = Services(
        uow=uow,
        clock=clock,
        directory=directory,
        policies=policy_set,
        signer=Ed25519GrantSigner(keys, clock.now),
        bus=bus,
        observer=observer,
        max_pending=parse_duration(settings.max_pending),
        channels=tuple(channels),
        personal_channels=frozenset(name for name, c in channels.items() if c.personal),
        feed_channels=frozenset(name for name, c in channels.items() if getattr(c, "feed", False)),
        tracking_channels=frozenset(
            name for name, c in channels.items() if c.keeps_message_updated
        ),
        check_action=target_set.check,
        targets=frozenset(executors),
        workload=load_workload(settings.workload_file),
        session_idle=parse_duration(settings.session_idle),
        session_max=parse_duration(settings.session_max),
        single_sign_on=oidc is not None,
        people_tokens=oidc if oidc is not None and oidc.cli_client_id else None,
        webauthn=WebAuthnPasskeys(settings.public_url),
        public_url=settings.public_url.rstrip("/"),
        wake_dispatcher=dispatch_wanted.set,
        history_cache=HistoryCache(settings.history_cache_seconds),
        github=github is not None,
        thresholds=Thresholds(
            min_reviews=settings.findings_min_reviews,
            min_votes=settings.findings_min_votes,
            quick_seconds=settings.findings_quick_seconds,
            quick_share=settings.findings_quick_share,
            never_denies_votes=settings.findings_never_denies_votes,
            timeout_share=settings.findings_timeout_share,
            notify_budget=settings.findings_notify_budget,
            fold_count=settings.findings_fold_count,
        ),
    )
    if oidc is not None:  # people a provider signed in are mailed at the address it gave
        for channel in channels.values():
            if hasattr(channel, "more_addresses"):
                channel.more_addresses = partial(sessions.email_of, services)
    retry = RetryPolicy(
        max_attempts=settings.outbox_max_attempts,
        backoff=timedelta(seconds=settings.outbox_backoff_seconds),
        backoff_max=timedelta(seconds=settings.outbox_backoff_max_seconds),
    )
    return App(
        settings=settings,
        engine=engine,
        services=services,
        keys=keys,
        bus=bus,
        directory=directory,
        channels=deliveries,
        retry=retry,
        links=links,
        quiet=quiet,
        executors=executors,
        observer=observer,
        dispatch_wanted=dispatch_wanted,
        checkpoint_sinks=checkpoint_sinks,
        oidc=oidc,
    )


def check_configured_channels(
    settings: Settings,
    policy_set: PolicySet,
    directory: Directory,
    channels: Mapping[str, Channel],
) -> None:
    """Every channel a policy or a person's preference names must be configured."""
    configured = ", ".join(channels) or "none"
    missing = [
        PolicyProblem(
            p.file,
            p.line,
            1,
            f"policy {p.name!r} notifies {name!r}, which is not a configured channel "
            f"(SIGNOFF_CHANNELS: {configured})",
        )
        for p in (*policy_set.policies, policy_set.default)
        for name in p.notify
        if name not in channels
    ]
    if missing:
        raise PolicyError(missing)
    for user in directory.users.values():
        for name in user.notify:
            if name not in channels:
                raise InvalidInput(
                    f"{settings.users_file}: user {user.name!r} prefers {name!r}, which is "
                    f"not a configured channel (SIGNOFF_CHANNELS: {configured})"
                )
