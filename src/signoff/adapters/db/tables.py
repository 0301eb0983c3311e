"""The schema. Alembic migrations in ``migrations/`` create and change it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which stores them naive) and PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


requests = sa.Table(
    "requests",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("requester", sa.String(100), nullable=False),
    sa.Column("action_type", sa.String(200), nullable=False),
    sa.Column("action_target", sa.String(500), nullable=False),
    sa.Column("action_params", sa.JSON, nullable=False),
    sa.Column("action_digest", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("ticket", sa.String(200)),
    sa.Column("context", sa.JSON, nullable=False),
    sa.Column("policy_name", sa.String(100), nullable=False),
    sa.Column("policy_set_digest", sa.String(64), nullable=False),
    sa.Column("stages", sa.JSON, nullable=False),
    sa.Column("current_stage", sa.Integer, nullable=False),
    sa.Column("grant_ttl_seconds", sa.Integer, nullable=False),
    sa.Column("grant_uses", sa.Integer, nullable=False),
    # Executions through Signoff run in a READ ONLY transaction (policy grant.read_only).
    sa.Column("read_only", sa.Boolean, nullable=False, server_default=sa.false()),
    # Who besides the requester may have Signoff execute it (policy grant.executors).
    sa.Column("executors", sa.JSON, nullable=False, server_default="[]"),
    # Who besides the requester and executors may redeem its grant (grant.redeemers).
    sa.Column("redeemers", sa.JSON, nullable=False, server_default="[]"),
    # Who may see it besides those involved (policy visible_to).
    sa.Column("viewers", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("stage_started_at", UTCDateTime),
    sa.Column("decided_at", UTCDateTime),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("on_timeout", sa.String(16), nullable=False, server_default="timed_out"),
    sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reminders_sent", sa.Integer, nullable=False, server_default="0"),
    sa.Column("expires_at", UTCDateTime),
    # The next moment the scheduler must act on this request (reminder, escalation,
    # timeout, grant expiry), or NULL: a sweep reads only rows that are due.
    sa.Column("next_due_at", UTCDateTime),
    # When the current stage's phase times out (a pending request), for inboxes.
    sa.Column("deadline_at", UTCDateTime),
    # How many more times the requester asked for this same action while it was pending.
    sa.Column("fold_count", sa.Integer, nullable=False, server_default="0"),
    # The channels its policy names (`notify:`), or [] for the server's default channels.
    sa.Column("notify", sa.JSON, nullable=False, server_default="[]"),
    # Approvers are told in one batch per this many seconds (policy notify_mode: digest).
    sa.Column("digest_seconds", sa.Integer),
    sa.Column("expiry_warned", sa.Boolean, nullable=False, server_default=sa.false()),
    # Why it is in its state, in one line ("denied by bob: too broad"); NULL while pending.
    sa.Column("outcome", sa.Text),
    # what the requester was when the policies judged it (groups, claims, admin), so a
    # policy change can be replayed against history after groups change
    sa.Column("requester_snapshot", sa.JSON),
    sa.Index("ix_requests_status_created", "status", "created_at"),
    # The fold check: this requester's pending twin of this action, oldest first.
    sa.Index("ix_requests_fold", "requester", "action_digest", "status", "created_at"),
    # Lists newest first, and their cursors (created_at, id).
    sa.Index("ix_requests_created", "created_at", "id"),
    sa.Index("ix_requests_requester_created", "requester", "created_at"),
    sa.Index("ix_requests_next_due_at", "next_due_at"),
)

# Who may vote in which stage of which request (the review's approvers, resolved to
# people at submission), so "what awaits me" is one indexed query.
request_approvers = sa.Table(
    "request_approvers",
    metadata,
    sa.Column("request_id", sa.String(36), sa.ForeignKey("requests.id"), primary_key=True),
    sa.Column("stage", sa.Integer, primary_key=True),
    sa.Column("person", sa.String(100), primary_key=True),
    sa.Index("ix_request_approvers_person", "person", "request_id"),
)

votes = sa.Table(
    "votes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(36), sa.ForeignKey("requests.id"), nullable=False),
    sa.Column("voter", sa.String(100), nullable=False),
    sa.Column("decision", sa.String(10), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("request_id", "voter", name="uq_votes_request_voter"),
)

grants = sa.Table(
    "grants",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("request_id", sa.String(36), sa.ForeignKey("requests.id"), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("uses_total", sa.Integer, nullable=False),
    sa.Column("uses_left", sa.Integer, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
    sa.UniqueConstraint("request_id", name="uq_grants_request_id"),
    sa.Index("ix_grants_expires_at", "expires_at"),
)

# What Signoff ran for a request (the gateway): one row per execution, the outcome
# recorded when it ends (a row without one means the process died while it ran).
executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("request_id", sa.String(36), sa.ForeignKey("requests.id"), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("ok", sa.Boolean),
    sa.Column("summary", sa.Text),
    sa.Column("output", sa.JSON),
    sa.Column("output_digest", sa.String(64)),
    sa.Index("ix_executions_request_id", "request_id"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(36)),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_events_request_seq", "request_id", "seq"),
)

# One row: the last appended event. Appending locks it, so the chain stays a chain
# under concurrency and an append never reads more than this row.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(36)),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_outbox_status_next", "status", "next_attempt_at"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("user_name", sa.String(100), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    # Empty: private keys live outside the database (a key file); rows written before
    # that held them here, and are emptied at start once moved out.
    sa.Column("private_pem", sa.Text, nullable=True),
    sa.Column("public_jwk", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# People signed in to the web app, by the SHA-256 of their cookie's value.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("user_name", sa.String(200), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
)

# People a single sign-on provider signed in, by (issuer, subject): the Signoff name
# they got at their first sign-in, and the email and (mapped) groups of their latest.
oidc_identities = sa.Table(
    "oidc_identities",
    metadata,
    sa.Column("issuer", sa.String(500), primary_key=True),
    sa.Column("subject", sa.String(255), primary_key=True),
    sa.Column("user_name", sa.String(200), nullable=False, unique=True),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("groups", sa.JSON, nullable=False),
    sa.Column("signed_in_at", UTCDateTime, nullable=False),
)

# Single sign-ins under way: what the callback checks (state, the browser's cookie
# hash, nonce) and the PKCE verifier; a row is spent by the callback that uses it.
oidc_logins = sa.Table(
    "oidc_logins",
    metadata,
    sa.Column("state", sa.String(64), primary_key=True),
    sa.Column("browser_hash", sa.String(64), nullable=False),
    sa.Column("nonce", sa.String(64), nullable=False),
    sa.Column("verifier", sa.String(128), nullable=False),
    sa.Column("next_path", sa.String(2000), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# How the approval flow went, for its analytics: "notified" (a message asking to vote
# reached a person, on a channel), "seen" (a person first looked at a request),
# "voted" (on which channel), "escalated" (a stage's escalation joined; no person).
flow_events = sa.Table(
    "flow_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(36), nullable=False),
    sa.Column("person", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_flow_events_request", "request_id", "kind", "person"),
    sa.Index("ix_flow_events_person", "person", "kind", "at"),
    sa.Index("ix_flow_events_at", "at"),
)

# Each requester's record, for policies that let trust grow with it (history.approved
# and friends): how many of their asks of a type on a target were approved, executed,
# denied, or ended in an incident (failed, revoked), per day of the outcome.
history_tallies = sa.Table(
    "history_tallies",
    metadata,
    sa.Column("requester", sa.String(200), primary_key=True),
    sa.Column("action_type", sa.String(200), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("action_target", sa.String(500), primary_key=True),
    sa.Column("outcome", sa.String(16), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)

# Passkeys people enrolled on their profile (WebAuthn credentials), for stages that
# ask for one (approve_with: passkey); and the challenges given out, each used once.
passkeys = sa.Table(
    "passkeys",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("user_name", sa.String(200), nullable=False, index=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("credential_id", sa.LargeBinary(1024), nullable=False, unique=True),
    sa.Column("public_key", sa.LargeBinary(2048), nullable=False),
    sa.Column("sign_count", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime),
)

passkey_challenges = sa.Table(
    "passkey_challenges",
    metadata,
    sa.Column("challenge", sa.String(100), primary_key=True),
    sa.Column("user_name", sa.String(200), nullable=False),
    sa.Column("purpose", sa.String(10), nullable=False),
    sa.Column("request_id", sa.String(36)),
    sa.Column("decision", sa.String(10)),
    sa.Column("action_digest", sa.String(64)),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Approval links (email, Teams) are single-use: a link's id is recorded when it votes.
used_links = sa.Table(
    "used_links",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("used_at", UTCDateTime, nullable=False),
)

# The Slack message that shows a request through one Signoff channel (`slack:#ops`):
# Slack's channel id and the message ts, which chat.update needs.
slack_messages = sa.Table(
    "slack_messages",
    metadata,
    sa.Column("request_id", sa.String(36), primary_key=True),
    sa.Column("channel", sa.String(100), primary_key=True),
    sa.Column("slack_channel", sa.String(40), nullable=False),
    sa.Column("ts", sa.String(40), nullable=False),
)

# GitHub deployment protection rule deliveries (docs/github.md): one row per delivery
# GitHub made, the request it became, and when the decision reached GitHub. The
# delivery id and the run's environment are each unique: a replay does nothing.
github_deliveries = sa.Table(
    "github_deliveries",
    metadata,
    sa.Column("delivery_id", sa.String(100), primary_key=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("repository", sa.String(200), nullable=False),
    sa.Column("environment", sa.String(255), nullable=False),
    sa.Column("run_id", sa.BigInteger, nullable=False),
    sa.Column("installation_id", sa.BigInteger, nullable=False),
    sa.Column("request_id", sa.String(36), nullable=False, index=True),
    sa.Column("reported_at", UTCDateTime),
    sa.UniqueConstraint("repository", "run_id", "environment", name="uq_github_deliveries_run"),
)
