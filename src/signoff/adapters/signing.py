"""Grant tokens: JWTs signed with Ed25519 (EdDSA), keys kept in the database.

A token carries the request id (``rid``), the grant id (``jti``), the requester
(``sub``), the SHA-256 digest of the canonical action (``act``), the number of uses
(``uses``), and ``iat``/``exp``. Ed25519 signatures are deterministic, so the same
grant always yields the same token and the token itself need not be stored.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy.engine import Engine

from signoff.adapters.db import tables as t
from signoff.domain.errors import GrantRefused, LinkRefused, Refused
from signoff.domain.requests import Request

ISSUER = "signoff"
AUDIENCE = "signoff-grant"


def _public_jwk(kid: str, key: Ed25519PublicKey) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(key))
    jwk.update({"kid": kid, "alg": "EdDSA", "use": "sig"})
    return jwk


class DatabaseKeyStore:
    """Ed25519 keys in the ``signing_keys`` table; the newest signs, all verify."""

    def __init__(self, engine: Engine, clock_now: Any) -> None:
        self.engine = engine
        self.clock_now = clock_now
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._public: dict[str, Ed25519PublicKey] = {}
        self._jwks: list[dict[str, Any]] = []
        self.active_kid = ""

    def ensure_key(self) -> None:
        """Generate the first key at first start; load all keys."""
        with self.engine.begin() as conn:
            have = conn.execute(sa.select(sa.func.count()).select_from(t.signing_keys)).scalar()
            if not have:
                key = Ed25519PrivateKey.generate()
                kid = uuid.uuid4().hex[:16]
                pem = key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode()
                conn.execute(
                    t.signing_keys.insert().values(
                        kid=kid,
                        private_pem=pem,
                        public_jwk=_public_jwk(kid, key.public_key()),
                        created_at=self.clock_now(),
                    )
                )
        self.load()

    def load(self) -> None:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(sa.select(t.signing_keys).order_by(t.signing_keys.c.created_at))
                .mappings()
                .all()
            )
        for row in rows:
            key = serialization.load_pem_private_key(row["private_pem"].encode(), None)
            assert isinstance(key, Ed25519PrivateKey)
            self._private[row["kid"]] = key
            self._public[row["kid"]] = key.public_key()
        self._jwks = [dict(r["public_jwk"]) for r in rows]
        if rows:
            self.active_kid = rows[-1]["kid"]

    def jwks(self) -> dict[str, Any]:
        return {"keys": list(self._jwks)}

    def private(self, kid: str) -> Ed25519PrivateKey:
        return self._private[kid]

    def public(self, kid: str) -> Ed25519PublicKey | None:
        if kid not in self._public:
            self.load()  # another replica may have rotated
        return self._public.get(kid)


def grant_claims(request: Request) -> dict[str, Any]:
    g = request.grant
    assert g is not None
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": request.requester,
        "jti": g.id,
        "rid": request.id,
        "act": request.action_digest,
        "uses": g.uses_total,
        "iat": int(g.issued_at.timestamp()),
        "exp": int(g.expires_at.timestamp()),
    }


class Ed25519GrantSigner:
    def __init__(self, keys: DatabaseKeyStore, clock_now: Any) -> None:
        self.keys = keys
        self.clock_now = clock_now

    def issue(self, request: Request) -> str:
        return _sign(self.keys, grant_claims(request))

    def verify(self, token: str) -> dict[str, Any]:
        return verify_token(token, self.keys.public, self.clock_now())


def _decode(
    token: str,
    public_for: Any,
    now: datetime,
    audience: str,
    refused: type[Refused],
    what: str,
    required: tuple[str, ...],
) -> dict[str, Any]:
    """Check an EdDSA token's header, key, signature, issuer, audience, expiry and the
    string claims ``required``; raise ``refused(reason, ...)`` naming what is wrong."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise refused("malformed", f"the {what} is malformed") from None
    if header.get("alg") != "EdDSA":
        raise refused("invalid_signature", f"the {what} is not signed with EdDSA")
    key = public_for(str(header.get("kid", "")))
    if key is None:
        raise refused("invalid_signature", f"the {what} was signed by an unknown key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            audience=audience,
            issuer=ISSUER,
            options={"require": ["exp", "jti", "iat"], "verify_exp": False},
        )
    except jwt.InvalidSignatureError:
        raise refused("invalid_signature", f"the {what}'s signature is not valid") from None
    except jwt.InvalidTokenError as exc:
        raise refused("malformed", f"the {what} is not valid: {exc}") from None
    if now.timestamp() >= float(claims["exp"]):
        raise refused("expired", f"the {what} has expired")
    for name in required:
        if not isinstance(claims.get(name), str):
            raise refused("malformed", f"the {what} lacks the {name!r} claim")
    return claims


def _sign(keys: DatabaseKeyStore, claims: dict[str, Any]) -> str:
    kid = keys.active_kid
    return jwt.encode(claims, keys.private(kid), algorithm="EdDSA", headers={"kid": kid})


def verify_token(token: str, public_for: Any, now: datetime) -> dict[str, Any]:
    """Check a grant token; GrantRefused with the reason if it does not hold."""
    return _decode(
        token, public_for, now, AUDIENCE, GrantRefused, "grant token", ("rid", "act", "sub")
    )


def verify_with_jwks(token: str, jwks: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Offline verification against a JWKS document (``signoff grant verify``)."""
    keyset = jwt.PyJWKSet.from_dict(jwks)

    def public_for(kid: str) -> Any:
        for k in keyset.keys:
            if k.key_id == kid:
                return k.key
        return None

    return verify_token(token, public_for, now)


LINK_AUDIENCE = "signoff-vote-link"


class VoteLinkSigner:
    """Tokens for approve/deny links in messages: bound to one approver, one request and
    one decision, expiring, and single-use (their ``jti`` is recorded when they vote)."""

    def __init__(self, keys: DatabaseKeyStore, clock_now: Any) -> None:
        self.keys = keys
        self.clock_now = clock_now

    def issue(self, approver: str, request_id: str, decision: str, expires_at: datetime) -> str:
        claims = {
            "iss": ISSUER,
            "aud": LINK_AUDIENCE,
            "sub": approver,
            "rid": request_id,
            "dec": decision,
            "jti": uuid.uuid4().hex,
            "iat": int(self.clock_now().timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        return _sign(self.keys, claims)

    def verify(self, token: str) -> dict[str, Any]:
        claims = _decode(
            token,
            self.keys.public,
            self.clock_now(),
            LINK_AUDIENCE,
            LinkRefused,
            "link",
            ("sub", "rid"),
        )
        if claims.get("dec") not in ("approve", "deny"):
            raise LinkRefused("malformed", "the link names no decision")
        return claims
