"""Workload identity: a pipeline proves who it is with its platform's short-lived OIDC
token (GitHub Actions, GitLab CI, a Kubernetes service account), not a stored secret.

``SIGNOFF_WORKLOAD_FILE`` names the issuers Signoff trusts and, for each, the claim rules
that map a token to a Signoff identity:

```yaml
issuers:
  - issuer: https://token.actions.githubusercontent.com
    audience: https://signoff.example.com       # the `aud` the job asks for
    rules:                                      # the first that matches decides
      - claims: {repository: acme/api, ref: refs/heads/main}   # globs on string claims
        user: "ci:{repository}"                 # {claim} placeholders
        groups: [deployers]
```

A token is checked with PyJWT against the issuer's keys (its discovery document's
``jwks_uri``, fetched once and again when a token names a key not seen yet): an
asymmetric algorithm only (``none`` and HMAC are refused, so a public key can never
serve as a shared secret), the exact issuer, the audience, expiry, not-before and
issued-at (30 s of leeway). The identity carries the token's claims, which policies read
as ``requester.claims`` (``requester.claims.ref == "refs/heads/main"``).
"""

from __future__ import annotations

import fnmatch
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jwt
from pydantic import BaseModel, ConfigDict, Field

from signoff.adapters.yaml_positions import load_model_file
from signoff.domain.errors import ErrorList, PolicyError, Unauthenticated
from signoff.domain.identity import User

# Asymmetric only: a token signed with a shared secret (or none) is never accepted.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
MAX_TOKEN = 16_000  # characters


def asymmetric(header: dict[str, Any], what: str) -> str:
    """The token's algorithm, if asymmetric; else Unauthenticated (``none`` and HMAC
    are refused, so a public key can never serve as a shared secret)."""
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise Unauthenticated(
            f"{what}s signed with {alg!r} are refused: only asymmetric algorithms "
            f"({', '.join(ALGORITHMS)})"
        )
    return str(alg)


def verify_signed(
    token: str, keys: jwt.PyJWKClient, issuer: str, audience: str, what: str
) -> dict[str, Any]:
    """The claims of a JWT from ``issuer`` for ``audience``, checked with PyJWT: an
    asymmetric algorithm only, a key among the issuer's (``keys`` refetches for an
    unknown kid), the signature, the issuer, the audience, ``exp``/``nbf``/``iat`` with
    30 s of leeway; Unauthenticated naming ``what`` and the reason otherwise. Used for
    pipelines' tokens and for people's ID tokens (``adapters/oidc.py``)."""
    if len(token) > MAX_TOKEN:
        raise Unauthenticated(f"the {what} is too long")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise Unauthenticated(f"the {what} is not a valid JWT") from None
    alg = asymmetric(header, what)
    try:
        key = keys.get_signing_key_from_jwt(token)
    except jwt.PyJWKClientError as exc:
        raise Unauthenticated(
            f"the {what}'s key ({header.get('kid')!r}) is not among {issuer}'s keys: {exc}"
        ) from None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=audience,
            issuer=issuer,
            leeway=30,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated(f"the {what} has expired") from None
    except jwt.InvalidAudienceError:
        raise Unauthenticated(
            f"the {what} is for audience {unverified.get('aud')!r}, not {audience!r}"
        ) from None
    except jwt.InvalidSignatureError:
        raise Unauthenticated(f"the {what}'s signature is not valid") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"the {what} is not valid: {exc}") from None
    return claims


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RuleDoc(_Strict):
    claims: dict[str, Annotated[str, Field(max_length=500)]] = {}
    user: Annotated[str, Field(min_length=1, max_length=200)]
    groups: list[Annotated[str, Field(min_length=1, max_length=200)]] = []


class IssuerDoc(_Strict):
    issuer: Annotated[str, Field(min_length=1, max_length=500)]
    audience: Annotated[str, Field(min_length=1, max_length=500)]
    jwks_url: str | None = None  # else the discovery document's jwks_uri
    key_refresh_cooldown_seconds: Annotated[float, Field(ge=0, le=3600)] = 10.0
    rules: list[RuleDoc] = Field(min_length=1)


class WorkloadDoc(_Strict):
    issuers: list[IssuerDoc] = []


@dataclass(frozen=True)
class ClaimRule:
    claims: Mapping[str, str]
    user: str
    groups: frozenset[str]

    def matches(self, claims: Mapping[str, Any]) -> bool:
        return all(
            isinstance(claims.get(k), str) and fnmatch.fnmatchcase(claims[k], pattern)
            for k, pattern in self.claims.items()
        )

    def name(self, claims: Mapping[str, Any]) -> str:
        fields = {f for _, f, _, _ in string.Formatter().parse(self.user) if f}
        values = {f: str(claims.get(f, "")) for f in fields}
        return self.user.format_map(values)


class TrustedIssuer:
    def __init__(self, doc: IssuerDoc, timeout: float) -> None:
        self.issuer = doc.issuer
        self.audience = doc.audience
        self.rules = [ClaimRule(r.claims, r.user, frozenset(r.groups)) for r in doc.rules]
        self._jwks_url = doc.jwks_url
        self._cooldown = doc.key_refresh_cooldown_seconds
        self._timeout = timeout
        self._client: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def keys(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                url = self._jwks_url or self._discover()
                self._client = jwt.PyJWKClient(
                    url,
                    cache_keys=True,
                    timeout=self._timeout,
                    cooldown_duration=self._cooldown,
                )
            return self._client

    def _discover(self) -> str:
        import httpx  # only when an issuer is first used: the server starts without it

        where = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            found = httpx.get(where, timeout=self._timeout).raise_for_status().json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unauthenticated(
                f"cannot read the discovery document of {self.issuer}: {type(exc).__name__}"
            ) from None
        url = found.get("jwks_uri") if isinstance(found, dict) else None
        if not isinstance(url, str) or found.get("issuer") != self.issuer:
            raise Unauthenticated(f"the discovery document of {self.issuer} is not valid")
        return url


class WorkloadVerifier:
    """Machine tokens from trusted issuers, as Signoff identities."""

    def __init__(self, issuers: list[TrustedIssuer]) -> None:
        self.issuers = {i.issuer: i for i in issuers}

    def accepts(self, token: str) -> bool:
        """Whether this looks like a JWT (an API token never does)."""
        return token.count(".") == 2 and not token.startswith("so_")

    def verify(self, token: str) -> User:
        if len(token) > MAX_TOKEN:
            raise Unauthenticated("the token is too long")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise Unauthenticated("the token is not a valid JWT") from None
        asymmetric(header, "token")  # refused before any issuer is looked at
        issuer = self.issuers.get(str(unverified.get("iss")))
        if issuer is None:
            raise Unauthenticated(f"tokens from issuer {unverified.get('iss')!r} are not trusted")
        claims = verify_signed(token, issuer.keys(), issuer.issuer, issuer.audience, "token")
        for rule in issuer.rules:
            if rule.matches(claims):
                return User(name=rule.name(claims), groups=rule.groups, claims=claims)
        raise Unauthenticated(
            f"no claim rule for {issuer.issuer} maps this token (sub {claims.get('sub')!r})"
        )


def load_workload(path: Path | str | None, timeout: float = 5.0) -> WorkloadVerifier | None:
    """The trusted issuers of ``SIGNOFF_WORKLOAD_FILE``; None without one. Raises
    PolicyError naming every problem as file:line:column."""
    if path is None or str(path) == "":
        return None
    errors = ErrorList()
    _, parsed = load_model_file(path, WorkloadDoc, "workload identity file", errors)
    if errors.problems:
        raise PolicyError(errors.problems)
    return WorkloadVerifier([TrustedIssuer(doc, timeout) for doc in parsed.issuers])
