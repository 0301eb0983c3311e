"""Single sign-on for people (OpenID Connect): the authorization code flow with PKCE,
state and nonce, against a provider found by its discovery document.

Authlib speaks the protocol (the authorization URL with its PKCE challenge, the code
exchange at the token endpoint); the ID token is checked with PyJWT against the
provider's keys (its ``jwks_uri``, fetched once and again when a token names a key not
seen yet): an asymmetric algorithm only, the exact issuer, our client id as audience
(and as ``azp`` when there are several), expiry and issued-at (30 s of leeway), and the
nonce this sign-in sent.

The CLI signs in too (``signoff login``, ``entrypoints/cli/login.py``), as a public
client of the same provider; the API then takes the provider's access tokens (JWTs):
``verify_access_token`` checks them with the same ``verify_signed`` against the
provider's keys, for the configured audience, and maps their groups.
"""

from __future__ import annotations

import secrets
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import authlib.deprecate  # noqa: F401 (sets its warning filter, which the next one overrides)
import httpx
import jwt

from signoff.adapters.workload import MAX_TOKEN, verify_signed
from signoff.domain.errors import Unauthenticated
from signoff.services.ports import ProviderPerson

with warnings.catch_warnings():
    # Authlib asks for httpx2, and falls back (with a warning) on httpx, which we use.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError


@dataclass(frozen=True)
class OidcClaims:
    """What a valid ID token says about who signed in."""

    issuer: str
    subject: str
    name: str | None
    email: str | None
    groups: frozenset[str]  # the provider's, not yet mapped


@dataclass(frozen=True)
class Started:
    """An authorization request: where to send the browser, and what to keep."""

    url: str
    state: str
    nonce: str
    verifier: str


class OidcProvider:
    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        scopes: str,
        name_claim: str,
        groups_claim: str,
        display_name: str = "",
        timeout: float = 10.0,
        group_map: Mapping[str, str] | None = None,
        cli_client_id: str = "",
        cli_scopes: str = "",
        audience: str = "",
        key_refresh_cooldown: float = 10.0,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = scopes
        self.name_claim = name_claim
        self.groups_claim = groups_claim
        self.display_name = display_name or (urlsplit(issuer).hostname or issuer)
        self.timeout = timeout
        self.group_map = dict(group_map or {})
        # signoff login: the CLI's public client, and the audience of access tokens
        self.cli_client_id = cli_client_id
        self.cli_scopes = cli_scopes
        self.audience = audience or cli_client_id
        # an unknown kid refetches the JWKS at most this often (seconds)
        self.key_refresh_cooldown = key_refresh_cooldown
        self._metadata: dict[str, Any] | None = None
        self._keys: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (read once)."""
        with self._lock:
            if self._metadata is None:
                where = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                try:
                    found = httpx.get(where, timeout=self.timeout).raise_for_status().json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise Unauthenticated(
                        f"cannot read the discovery document of {self.issuer}: {type(exc).__name__}"
                    ) from None
                needed = ("authorization_endpoint", "token_endpoint", "jwks_uri")
                if (
                    not isinstance(found, dict)
                    or found.get("issuer") != self.issuer
                    or not all(isinstance(found.get(k), str) for k in needed)
                ):
                    raise Unauthenticated(f"the discovery document of {self.issuer} is not valid")
                self._metadata = found
            return self._metadata

    def keys(self) -> jwt.PyJWKClient:
        jwks_uri = self.metadata()["jwks_uri"]
        with self._lock:
            if self._keys is None:
                self._keys = jwt.PyJWKClient(
                    jwks_uri,
                    cache_keys=True,
                    timeout=int(self.timeout),
                    cooldown_duration=self.key_refresh_cooldown,
                )
            return self._keys

    def _client(self, redirect_uri: str) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret or None,
            token_endpoint_auth_method="client_secret_basic" if self.client_secret else "none",
            scope=self.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=self.timeout,
        )

    def start(self, redirect_uri: str) -> Started:
        """The authorization URL for a new sign-in, with a fresh state, nonce and PKCE
        verifier (S256)."""
        endpoint = self.metadata()["authorization_endpoint"]
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                endpoint, state=state, code_verifier=verifier, nonce=nonce
            )
        return Started(url, state, nonce, verifier)

    def finish(self, redirect_uri: str, code: str, verifier: str, nonce: str) -> OidcClaims:
        """Exchange the code (with the PKCE verifier) and check the ID token."""
        endpoint = self.metadata()["token_endpoint"]
        try:
            with self._client(redirect_uri) as client:
                token = client.fetch_token(endpoint, code=code, code_verifier=verifier)
        except (OAuthError, httpx.HTTPError) as exc:
            raise Unauthenticated(f"the provider refused the sign-in: {exc}") from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise Unauthenticated("the provider sent no ID token")
        return self.claims(self.verify_id_token(id_token, nonce))

    def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        claims = verify_signed(id_token, self.keys(), self.issuer, self.client_id, "ID token")
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.client_id:
            raise Unauthenticated("the ID token was issued to another client (azp)")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not secrets.compare_digest(sent, nonce):
            raise Unauthenticated("the ID token does not answer this sign-in (nonce)")
        return claims

    def claims(self, claims: Mapping[str, Any]) -> OidcClaims:
        name = claims.get(self.name_claim)
        email = claims.get("email")
        groups = claims.get(self.groups_claim)
        return OidcClaims(
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            name=name if isinstance(name, str) and name else None,
            email=email if isinstance(email, str) and email else None,
            groups=frozenset(g for g in groups if isinstance(g, str))
            if isinstance(groups, list)
            else frozenset(),
        )

    def mapped(self, groups: frozenset[str]) -> frozenset[str]:
        """The provider's groups as Signoff's (SIGNOFF_OIDC_GROUP_MAP); others ignored."""
        return frozenset(self.group_map[g] for g in groups if g in self.group_map)

    def accepts(self, token: str) -> bool:
        """Whether a bearer token is one of this provider's JWTs (its unverified ``iss``),
        to be checked as an access token; never for an API token (``so_...``)."""
        if not self.cli_client_id or token.count(".") != 2 or len(token) > MAX_TOKEN:
            return False
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return False
        return unverified.get("iss") == self.issuer

    def verify_access_token(self, token: str) -> ProviderPerson:
        """A person's access token (``signoff login``), checked like an ID token
        (``verify_signed``: asymmetric algorithm, the provider's keys, exact issuer,
        ``SIGNOFF_OIDC_AUDIENCE``, times), its groups mapped."""
        claims = verify_signed(token, self.keys(), self.issuer, self.audience, "access token")
        found = self.claims(claims)
        return ProviderPerson(
            issuer=found.issuer,
            subject=found.subject,
            name=found.name,
            email=found.email,
            groups=self.mapped(found.groups),
            expires_at=float(claims["exp"]),
        )
