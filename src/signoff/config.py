"""Settings, read once from the environment (prefix ``SIGNOFF_``) by bootstrap.

The CLI's client side (``SIGNOFF_URL``, ``SIGNOFF_TOKEN``) is read by
``entrypoints/cli/client.py``, so that commands which only talk HTTP need not load this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

EXAMPLES = Path(__file__).parent / "examples"


class WebhookSettings(BaseModel):
    """One webhook receiver: where to POST and the secret that signs each delivery."""

    url: str = Field(description="The receiver's URL.")
    secret: str = Field(description="HMAC-SHA256 key for the Signoff-Signature header.")


class Settings(BaseSettings):
    """The server's settings."""

    model_config = SettingsConfigDict(env_prefix="SIGNOFF_", extra="ignore")

    data_dir: Path = Field(
        Path(".signoff"), description="Where the embedded SQLite database lives."
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; empty means SQLite at DATA_DIR/signoff.db. "
        "For PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    policies_dir: Path = Field(EXAMPLES / "policies", description="Folder of policy YAML files.")
    users_file: Path = Field(
        EXAMPLES / "users.yaml", description="YAML file of users and groups (embedded mode)."
    )
    workload_file: Path | None = Field(
        None,
        description="YAML file of the OIDC issuers whose machine tokens (GitHub Actions, "
        "GitLab, Kubernetes) Signoff accepts, with claim rules mapping each token to an "
        "identity (docs/identity.md).",
    )
    targets_file: Path | None = Field(
        None,
        description="YAML file of targets Signoff executes approved actions on (postgres, "
        "command, http); none: Signoff only grants.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8000, description="Port the HTTP server binds.")
    max_body_bytes: int = Field(
        1_048_576, description="Largest request body accepted, in bytes (larger: 413)."
    )
    sse_keepalive_seconds: float = Field(
        15.0, description="Seconds between keep-alive comments on idle event streams."
    )
    db_pool_size: int = Field(10, description="Database connections kept per process.")
    sqlite_synchronous: Literal["full", "normal"] = Field(
        "full",
        description="SQLite's durability: `full` syncs the write-ahead log to disk at every "
        "commit (a decision survives a power cut); `normal` syncs it at checkpoints only "
        "(a decision survives a crash of Signoff or of its process, and the last moments "
        "before a power cut may be lost), for much lower latency. PostgreSQL: see its "
        "`synchronous_commit`.",
    )
    max_pending: str = Field(
        "7d",
        description="The longest any request may stay pending, whatever its policy says "
        "(then it times out). A duration: 12h, 7d, ...",
    )
    worker_in_server: bool = Field(
        True, description="Run the deadline worker inside `signoff serve`."
    )
    worker_interval_seconds: float = Field(
        1.0, description="How often the worker looks for due deadlines."
    )
    worker_batch: int = Field(100, description="Due requests claimed per transaction.")
    checkpoints: str = Field(
        "",
        description="Where signed audit checkpoints go, comma-separated: file:PATH (outside "
        "the data folder), webhook:URL, syslog: or syslog:HOST:PORT; empty: none.",
    )
    checkpoint_every: str = Field(
        "1h", description="How often the worker writes a checkpoint (when CHECKPOINTS is set)."
    )
    channels: str = Field(
        "log",
        description="Comma-separated channels (policies choose among them with `notify:`; "
        "policies that name none use them all): `log`, `email`, `slack:#channel`, "
        "`slack:dm`, `teams:NAME` (a key of TEAMS_WEBHOOKS), `teams:dm`, `apprise:NAME` "
        "(a key of APPRISE), `webhook:NAME` (a key of WEBHOOKS).",
    )
    teams_webhooks: dict[str, str] = Field(
        default_factory=dict,
        description='JSON {"NAME": "incoming webhook URL"} for `teams:NAME` channels.',
    )
    apprise: dict[str, list[str]] = Field(
        default_factory=dict,
        description='JSON {"NAME": ["apprise URL", ...]} for `apprise:NAME` channels, '
        'e.g. {"ops": ["discord://id/token"]}.',
    )
    quiet_hours: dict[str, str] = Field(
        default_factory=dict,
        description='JSON {"channel": "22:00-07:00 Europe/Paris"}: that channel sends '
        "nothing in the window; messages leave when it ends.",
    )
    webhooks: dict[str, WebhookSettings] = Field(
        default_factory=dict,
        description='JSON: {"NAME": {"url": "...", "secret": "..."}}.',
    )
    outbox_max_attempts: int = Field(
        8, description="Delivery attempts before a notification is dead-lettered."
    )
    outbox_backoff_seconds: float = Field(
        2.0, description="First retry delay; it doubles with each attempt."
    )
    outbox_backoff_max_seconds: float = Field(3600.0, description="Longest retry delay.")
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="The server's address as people reach it: links in messages use it.",
    )
    link_ttl: str = Field("24h", description="How long approve/deny links in messages work.")
    ticket_url: str = Field(
        "",
        description="Where a ticket is read, with {ticket} for its id "
        "(e.g. https://jira.example/browse/{ticket}): request pages link tickets there.",
    )
    signin_link_ttl: str = Field(
        "15m", description="How long a one-time web sign-in link (signoff signin-link) works."
    )
    session_idle: str = Field(
        "8h", description="A web session unused for this long ends (sign in again)."
    )
    session_max: str = Field(
        "7d", description="A web session ends this long after sign-in, however busy."
    )
    oidc_issuer: str = Field(
        "",
        description="Single sign-on for the web app: the OpenID provider's issuer URL (its "
        "discovery document is ISSUER/.well-known/openid-configuration); empty: sign-in "
        "by one-time link only (docs/identity.md).",
    )
    oidc_client_id: str = Field("", description="Signoff's client id at the OpenID provider.")
    oidc_client_secret: str = Field(
        "", description="Signoff's client secret at the OpenID provider (empty: a public client)."
    )
    oidc_scopes: str = Field(
        "openid email profile", description="The scopes Signoff asks the provider for."
    )
    oidc_groups_claim: str = Field(
        "groups", description="The ID token (or userinfo) claim that lists a person's groups."
    )
    oidc_group_map: dict[str, str] = Field(
        default_factory=dict,
        description='JSON {"provider group": "Signoff group"}; groups not named are ignored.',
    )
    oidc_name_claim: str = Field(
        "preferred_username",
        description="The claim a person's Signoff name comes from at their first sign-in "
        "(else their email).",
    )
    oidc_provider_name: str = Field(
        "",
        description='The name on the sign-in button ("Sign in with NAME"); default: the '
        "issuer's host.",
    )
    history_cache_seconds: float = Field(
        2.0,
        ge=0,
        description="How long a requester's record, read for a history condition, is kept "
        "in a process (0: read every time); another replica's writes show after this long.",
    )
    findings_min_reviews: int = Field(
        20, ge=1, description="Reviews of a policy before 'always approved' is a finding."
    )
    findings_min_votes: int = Field(
        10, ge=1, description="Votes of an approver before their quick approvals are judged."
    )
    findings_quick_seconds: float = Field(
        5.0, ge=0, description="An approval this soon after the approver's first look is quick."
    )
    findings_quick_share: float = Field(
        0.5, gt=0, le=1, description="The share of quick approvals that is a finding."
    )
    findings_never_denies_votes: int = Field(
        20, ge=1, description="Votes without one denial that make 'never denies' a finding."
    )
    findings_timeout_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="The share of reviews timed out or escalated that is a finding.",
    )
    findings_notify_budget: int = Field(
        25, ge=1, description="Asks delivered to one approver in one day before it is too many."
    )
    findings_fold_count: int = Field(
        10, ge=1, description="Identical asks folded for one requester that make them noisy."
    )
    oidc_cli_client_id: str = Field(
        "",
        description="`signoff login`: the CLI's client id at the OpenID provider (a public "
        "client: device authorization grant, or a loopback redirect with PKCE). When set, "
        "the API also accepts the provider's access tokens (JWTs) from people; empty: "
        "neither (docs/identity.md, The CLI).",
    )
    oidc_cli_scopes: str = Field(
        "openid email profile offline_access",
        description="The scopes `signoff login` asks the provider for (offline_access: a "
        "refresh token).",
    )
    oidc_audience: str = Field(
        "",
        description="The audience (`aud`) the provider's access tokens must carry for the "
        "API to accept them; empty: OIDC_CLI_CLIENT_ID.",
    )
    smtp_host: str = Field("127.0.0.1", description="SMTP server for the email channel.")
    smtp_port: int = Field(25, description="SMTP port (587 with STARTTLS, 465 with TLS).")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_tls: bool = Field(False, description="Connect to SMTP over TLS from the start.")
    smtp_username: str = Field("", description="SMTP user, if the server wants one.")
    smtp_password: str = Field("", description="SMTP password.")
    mail_from: str = Field("signoff@localhost", description="The From address of mail.")
    slack_token: str = Field("", description="Slack bot token (xoxb-...) for `slack:` channels.")
    slack_signing_secret: str = Field(
        "", description="Verifies Slack's calls to /slack/interactions."
    )
    slack_api_url: str = Field(
        "https://slack.com/api/", description="Slack Web API base URL (tests point it home)."
    )
    slack_users: dict[str, str] = Field(
        default_factory=dict,
        description='JSON {"slack user id": "signoff user"}; others are matched by email.',
    )

    github_app_id: str = Field(
        "",
        description="GitHub deployments: the GitHub App's id (or its client id), the issuer "
        "of the App's JWTs; empty: POST /integrations/github/webhook is not served "
        "(docs/github.md).",
    )
    github_private_key_file: Path | None = Field(
        None, description="The GitHub App's private key (PEM), as GitHub made it; a secret."
    )
    github_private_key: SecretStr = Field(
        SecretStr(""),
        description="The same key as PEM text (instead of the file), for containers; a secret.",
    )
    github_webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="The GitHub App's webhook secret: every delivery's X-Hub-Signature-256 "
        "is checked with it (required with GITHUB_APP_ID).",
    )
    github_api_url: str = Field(
        "https://api.github.com",
        description="GitHub's REST API (GitHub Enterprise Server: https://HOST/api/v3).",
    )
    github_requester: str = Field(
        "github",
        description="Who a deployment's request is made for when its GitHub sender is not "
        "a person of the users file (`github: LOGIN`); policies tell such requests apart by "
        "requester.claims (repository, environment, sender).",
    )

    signing_keys_file: Path | None = Field(
        None,
        description="File of the Ed25519 private keys that sign grants and approval links "
        "(PEM, newest last; mode 0600); default DATA_DIR/signing-keys.pem, made at first "
        "start. Replicas share one (a mounted secret). Never stored in the database.",
    )
    signing_keys: str = Field(
        "",
        description="The same keys as PEM text (instead of the file), for containers; when "
        "set, the file is neither read nor written.",
    )

    def effective_signing_keys_file(self) -> Path:
        return self.signing_keys_file or self.data_dir / "signing-keys.pem"

    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'signoff.db').resolve()}"
