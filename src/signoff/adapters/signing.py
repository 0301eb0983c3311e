"""Grant tokens: JWTs signed with Ed25519 (EdDSA); private keys outside the database.

A token carries the request id (``rid``), the grant id (``jti``), the requester
(``sub``), the SHA-256 digest of the canonical action (``act``), the number of uses
(``uses``), and ``iat``/``exp``. Ed25519 signatures are deterministic, so the same
grant always yields the same token and the token itself need not be stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy.engine import Engine

from signoff.adapters.db import tables as t
from signoff.domain.errors import GrantRefused, InvalidInput, LinkRefused, Refused
from signoff.domain.requests import Request

ISSUER = "signoff"
AUDIENCE = "signoff-grant"


def _public_jwk(kid: str, key: Ed25519PublicKey) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(key))
    jwk.update({"kid": kid, "alg": "EdDSA", "use": "sig"})
    return jwk


class KeyRing:
    """Ed25519 signing keys: the private keys live outside the database (a key file with
    mode 0600, or PEM text from the environment); the database holds only the public
    keys (``signing_keys``), so every replica verifies, and a copy of the database can
    sign nothing. The newest private key signs; every registered public key verifies,
    so tokens signed before a rotation stay valid until they expire.

    At first start (no keys anywhere) a key is made and written to the file. When the
    database already lists keys but none of their private keys is at hand, the server
    refuses to start rather than sign with a key nobody else knows. A database from
    before this scheme (private keys in ``signing_keys.private_pem``) has them moved out
    into the file, and the column emptied, once."""

    def __init__(
        self, engine: Engine, clock_now: Any, path: Path | None, pem_text: str = ""
    ) -> None:
        self.engine = engine
        self.clock_now = clock_now
        self.path = path
        self.pem_text = pem_text
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._public: dict[str, Ed25519PublicKey] = {}
        self._jwks: list[dict[str, Any]] = []
        self.active_kid = ""

    def ensure_key(self) -> None:
        keys = self._read_private()
        if not keys:
            keys = self._first_keys()
        self._private = {kid_of(k): k for k in keys}
        self.active_kid = kid_of(keys[-1])
        with self.engine.begin() as conn:
            known = set(conn.execute(sa.select(t.signing_keys.c.kid)).scalars())
            for kid, key in self._private.items():
                if kid not in known:
                    self._register(conn, kid, key.public_key())
        self.load()

    def _read_private(self) -> list[Ed25519PrivateKey]:
        if self.pem_text:
            return parse_keys(self.pem_text, "SIGNOFF_SIGNING_KEYS")
        if self.path is not None and self.path.exists():
            return parse_keys(self.path.read_text(encoding="utf-8"), str(self.path))
        return []

    def _first_keys(self) -> list[Ed25519PrivateKey]:
        """No private key at hand: move legacy keys out of the database, or make the
        first key; or refuse when the database expects keys we do not have."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(t.signing_keys.c.kid, t.signing_keys.c.private_pem).order_by(
                    t.signing_keys.c.created_at
                )
            ).all()
            legacy = [r.private_pem for r in rows if r.private_pem]
            if legacy and self.path is not None and not self.pem_text:
                keys = [k for pem in legacy for k in parse_keys(pem, "the database")]
                write_keys(self.path, keys)
                conn.execute(t.signing_keys.update().values(private_pem=None))
                return keys
            if rows:
                where = "SIGNOFF_SIGNING_KEYS" if self.pem_text else str(self.path)
                raise InvalidInput(
                    f"the database lists {len(rows)} signing key(s) but their private keys "
                    f"are not in {where}: restore the key file the other replicas use, or run "
                    "`signoff keys rotate` to start signing with a new key"
                )
        if self.path is None or self.pem_text:
            raise InvalidInput("SIGNOFF_SIGNING_KEYS holds no Ed25519 private key")
        key = Ed25519PrivateKey.generate()
        write_keys(self.path, [key])
        return [key]

    def rotate(self) -> str:
        """A new key signs from now on; the old ones keep verifying. Appends to the key
        file (SIGNOFF_SIGNING_KEYS users add the printed key to their secret)."""
        if self.path is None or self.pem_text:
            raise InvalidInput("keys given as SIGNOFF_SIGNING_KEYS are rotated where they are kept")
        existing = self._read_private()
        key = Ed25519PrivateKey.generate()
        write_keys(self.path, [*existing, key])
        kid = kid_of(key)
        with self.engine.begin() as conn:
            self._register(conn, kid, key.public_key())
        self._private[kid] = key
        self.active_kid = kid
        self.load()
        return kid

    def _register(self, conn: sa.Connection, kid: str, public: Ed25519PublicKey) -> None:
        conn.execute(
            t.signing_keys.insert().values(
                kid=kid,
                private_pem=None,
                public_jwk=_public_jwk(kid, public),
                created_at=self.clock_now(),
            )
        )

    def load(self) -> None:
        """The public keys every replica verifies with, from the database."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.signing_keys.c.kid, t.signing_keys.c.public_jwk).order_by(
                    t.signing_keys.c.created_at
                )
            ).all()
        for kid, jwk in rows:
            key = OKPAlgorithm.from_jwk(json.dumps(jwk))
            if isinstance(key, Ed25519PublicKey):
                self._public[kid] = key
        self._jwks = [dict(jwk) for _, jwk in rows]

    def signing_publics(self) -> dict[str, Ed25519PublicKey]:
        """The public halves of the private keys at hand (from the key file or the
        environment, not from the database): what checkpoints are verified with."""
        return {kid: key.public_key() for kid, key in self._private.items()}

    def jwks(self) -> dict[str, Any]:
        return {"keys": list(self._jwks)}

    def private(self, kid: str) -> Ed25519PrivateKey:
        return self._private[kid]

    def public(self, kid: str) -> Ed25519PublicKey | None:
        if kid not in self._public:
            self.load()  # another replica may have rotated
        return self._public.get(kid)


PEM_BLOCK = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S
)


def kid_of(key: Ed25519PrivateKey) -> str:
    """A key's id: derived from its public key, so every replica names it the same."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def parse_keys(text: str, where: str) -> list[Ed25519PrivateKey]:
    """Every PEM private key in ``text``, in order; a problem names ``where``, never the
    text."""
    blocks = re.findall(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", text, re.S
    )
    keys = []
    for i, block in enumerate(blocks, 1):
        try:
            key = serialization.load_pem_private_key(block.encode(), None)
        except (ValueError, TypeError):
            raise InvalidInput(f"signing key {i} in {where} cannot be read") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidInput(f"signing key {i} in {where} is not an Ed25519 key")
        keys.append(key)
    if text.strip() and not keys:
        raise InvalidInput(f"{where} holds no PEM private key")
    return keys


def write_keys(path: Path, keys: list[Ed25519PrivateKey]) -> None:
    """Write the key file whole, readable by its owner only (0600), replacing it
    atomically."""
    pem = "".join(
        k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        for k in keys
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(pem)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


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
    def __init__(self, keys: KeyRing, clock_now: Any) -> None:
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


def _sign(keys: KeyRing, claims: dict[str, Any]) -> str:
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
VIEW_AUDIENCE = "signoff-view-link"
SIGNIN_AUDIENCE = "signoff-signin-link"


class VoteLinkSigner:
    """Tokens for approve/deny links in messages: bound to one approver, one request and
    one decision, expiring, and single-use (their ``jti`` is recorded when they vote)."""

    def __init__(self, keys: KeyRing, clock_now: Any) -> None:
        self.keys = keys
        self.clock_now = clock_now

    def issue(
        self,
        approver: str,
        request_id: str,
        decision: str,
        expires_at: datetime,
        channel: str = "",
    ) -> str:
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": LINK_AUDIENCE,
            "sub": approver,
            "rid": request_id,
            "dec": decision,
            "jti": uuid.uuid4().hex,
            "iat": int(self.clock_now().timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        if channel:  # where the link was sent (mail, Teams): where the vote came from
            claims["ch"] = channel
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

    def issue_view(self, person: str, request_id: str, expires_at: datetime) -> str:
        """A link that shows one request to one person (the "Details" link of their
        message): read-only, reusable until it expires, useless for voting (its
        audience differs)."""
        claims = {
            "iss": ISSUER,
            "aud": VIEW_AUDIENCE,
            "sub": person,
            "rid": request_id,
            "jti": uuid.uuid4().hex,
            "iat": int(self.clock_now().timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        return _sign(self.keys, claims)

    def issue_signin(self, person: str, expires_at: datetime) -> str:
        """A one-time web sign-in link for a person (single-use: its ``jti`` is recorded
        when it signs in)."""
        claims = {
            "iss": ISSUER,
            "aud": SIGNIN_AUDIENCE,
            "sub": person,
            "jti": uuid.uuid4().hex,
            "iat": int(self.clock_now().timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        return _sign(self.keys, claims)

    def verify_signin(self, token: str) -> dict[str, Any]:
        return _decode(
            token,
            self.keys.public,
            self.clock_now(),
            SIGNIN_AUDIENCE,
            LinkRefused,
            "link",
            ("sub",),
        )

    def verify_view(self, token: str) -> dict[str, Any]:
        return _decode(
            token,
            self.keys.public,
            self.clock_now(),
            VIEW_AUDIENCE,
            LinkRefused,
            "link",
            ("sub", "rid"),
        )
