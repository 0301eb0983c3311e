"""GitHub's side of gated deployments (docs/github.md): the webhook's signature, the App's
credentials, and the ``github`` delivery that answers a waiting run.

- A delivery is signed by GitHub with the App's webhook secret: ``X-Hub-Signature-256`` is
  ``sha256=`` and the hex HMAC-SHA256 of the raw body (``signature_ok``).
- The App proves itself with a JWT it signs with its private key (RS256; ``iss`` the App's
  id, ``iat`` 60 s in the past against clock drift, ``exp`` 9 minutes on, under GitHub's
  10), exchanged at ``POST /app/installations/{id}/access_tokens`` for an installation
  token (an hour), kept until five minutes before it expires.
- The decision goes to ``POST /repos/{owner}/{repo}/actions/runs/{run_id}/
  deployment_protection_rule`` with ``{environment_name, state, comment}``; always on the
  configured API (the delivery's callback URL only names the run), so the token never
  leaves for an address a payload chose.

The private key and the tokens are never logged nor put in an error: a failed call is
reported with its status and GitHub's message.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy.engine import Engine

from signoff.adapters.db import tables as t
from signoff.domain.errors import InvalidInput
from signoff.services.messages import Message
from signoff.services.ports import DeliveryError, GitHubDelivery, Notification

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
API_VERSION = "2022-11-28"
TOKEN_MARGIN = timedelta(minutes=5)  # an installation token is renewed this long before
MAX_COMMENT = 1000

APPROVED_STATES = frozenset({"approved", "executed", "failed", "expired", "revoked"})


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, given: str | None) -> bool:
    """Whether ``given`` (the X-Hub-Signature-256 header) signs ``body`` with ``secret``;
    compared in constant time. No secret, or no header: False."""
    if not secret or not given:
        return False
    return hmac.compare_digest(given.strip(), sign(secret, body))


def load_private_key(path: Path | None, text: str) -> RSAPrivateKey:
    """The App's RSA private key from its PEM text or file; InvalidInput otherwise (the
    message never quotes the key)."""
    if text:
        data = text.encode()
        where = "SIGNOFF_GITHUB_PRIVATE_KEY"
    elif path is not None:
        where = f"SIGNOFF_GITHUB_PRIVATE_KEY_FILE ({path})"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"{where}: cannot read it: {exc.strerror}") from None
    else:
        raise InvalidInput(
            "SIGNOFF_GITHUB_APP_ID is set: SIGNOFF_GITHUB_PRIVATE_KEY_FILE (or "
            "SIGNOFF_GITHUB_PRIVATE_KEY) must name the App's private key"
        )
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise InvalidInput(f"{where} is not a PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise InvalidInput(f"{where} is not an RSA key (GitHub Apps sign with RS256)")
    return key


def app_jwt(app_id: str, key: RSAPrivateKey, now: float) -> str:
    """The App's own token: RS256, issued 60 s in the past, valid 9 minutes on."""
    claims = {"iss": app_id, "iat": int(now) - 60, "exp": int(now) + 540}
    return jwt.encode(claims, key, algorithm="RS256")


class GitHubApp:
    """The App's calls to GitHub's API, with installation tokens kept until shortly
    before they expire."""

    def __init__(
        self,
        app_id: str,
        key: RSAPrivateKey,
        api_url: str,
        now: Callable[[], float] = time.time,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.app_id = app_id
        self._key = key
        self.api_url = api_url.rstrip("/")
        self._now = now
        self._tokens: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.client = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "signoff",
            },
        )

    def __repr__(self) -> str:  # never the key
        return f"GitHubApp(app_id={self.app_id!r}, api_url={self.api_url!r})"

    def installation_token(self, installation_id: int) -> str:
        with self._lock:
            kept = self._tokens.get(installation_id)
            if kept is not None and self._now() < kept[1]:
                return kept[0]
        url = f"{self.api_url}/app/installations/{installation_id}/access_tokens"
        auth = {"Authorization": f"Bearer {app_jwt(self.app_id, self._key, self._now())}"}
        body = self._call("the installation token exchange", url, auth, None)
        token, expires = body.get("token"), body.get("expires_at")
        if not isinstance(token, str) or not token:
            raise DeliveryError("the installation token exchange answered without a token")
        try:
            until = datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
            keep_until = (until - TOKEN_MARGIN).timestamp()
        except ValueError:
            keep_until = self._now()  # used once, asked again next time
        with self._lock:
            self._tokens[installation_id] = (token, keep_until)
        return token

    def forget_token(self, installation_id: int) -> None:
        with self._lock:
            self._tokens.pop(installation_id, None)

    def review(self, delivery: GitHubDelivery, state: str, comment: str) -> None:
        """Approve or reject the run's deployment to the delivery's environment."""
        token = self.installation_token(delivery.installation_id)
        url = (
            f"{self.api_url}/repos/{delivery.repository}/actions/runs/{delivery.run_id}"
            "/deployment_protection_rule"
        )
        body = {"environment_name": delivery.environment, "state": state, "comment": comment}
        try:
            self._call("the deployment review", url, {"Authorization": f"Bearer {token}"}, body)
        except DeliveryError as exc:
            if "HTTP 401" in str(exc):  # revoked meanwhile: the next attempt asks anew
                self.forget_token(delivery.installation_id)
            raise

    def _call(
        self, what: str, url: str, headers: dict[str, str], body: dict[str, Any] | None
    ) -> dict[str, Any]:
        try:
            resp = self.client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{what}: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 300:
            raise DeliveryError(f"{what}: HTTP {resp.status_code}: {_said(resp)}")
        if not resp.content:
            return {}
        try:
            found = resp.json()
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}

    def close(self) -> None:
        self.client.close()


def _said(resp: httpx.Response) -> str:
    try:
        message = resp.json().get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message)[:200] if message else resp.text[:200]


class DeploymentGates:
    """The runs waiting on each request (``github_deliveries``), and which have heard."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def waiting(self, request_id: str) -> list[GitHubDelivery]:
        g = t.github_deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(g)
                .where(g.c.request_id == request_id, g.c.reported_at.is_(None))
                .order_by(g.c.received_at, g.c.delivery_id)
            ).mappings()
            return [
                GitHubDelivery(
                    delivery_id=r["delivery_id"],
                    repository=r["repository"],
                    environment=r["environment"],
                    run_id=int(r["run_id"]),
                    installation_id=int(r["installation_id"]),
                    request_id=r["request_id"],
                    received_at=r["received_at"],
                )
                for r in rows
            ]

    def reported(self, delivery_id: str, at: datetime) -> None:
        g = t.github_deliveries
        with self.engine.begin() as conn:
            conn.execute(g.update().where(g.c.delivery_id == delivery_id).values(reported_at=at))


def review_of(m: Message, public_url: str) -> tuple[str, str]:
    """The state GitHub is given (``approved`` or ``rejected``) and the comment: who
    decided and why, and the request's page."""
    r = m.request
    if m.status in APPROVED_STATES:
        state = "approved"
        approvals = [v for v in r.votes if v.decision == "approved"]
        if not approvals:
            line = f"Approved in Signoff by policy {r.policy!r}"
        elif len(approvals) == 1:
            v = approvals[0]
            line = f"Approved in Signoff by {v.voter}" + (f": {v.comment}" if v.comment else "")
        else:
            line = "Approved in Signoff by " + ", ".join(v.voter for v in approvals)
            said = [f"{v.voter}: {v.comment}" for v in approvals if v.comment]
            line += "".join(f"\n{s}" for s in said)
    else:
        state = "rejected"
        line = f"Rejected in Signoff: {r.outcome or m.status}"
    page = f"{public_url.rstrip('/')}/requests/{r.id}"
    room = MAX_COMMENT - len(page) - 2
    if len(line) > room:
        line = line[: room - 1] + "…"
    return state, f"{line}\n\n{page}"


class GitHubDeploymentChannel:
    """The ``github`` outbox delivery: tells every run waiting on a decided request."""

    name = "github"
    keeps_message_updated = False
    personal = False

    def __init__(
        self,
        app: GitHubApp,
        gates: DeploymentGates,
        public_url: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = app
        self.gates = gates
        self.public_url = public_url
        self._now = now

    def send(self, notification: Notification) -> None:
        if notification.request_id is None:
            return
        state, comment = review_of(notification.message, self.public_url)
        for delivery in self.gates.waiting(notification.request_id):
            self.app.review(delivery, state, comment)
            self.gates.reported(delivery.delivery_id, self._now())

    def close(self) -> None:
        self.app.close()
