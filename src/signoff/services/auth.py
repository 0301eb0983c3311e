"""API tokens: create them (shown once, stored hashed) and authenticate callers."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import TYPE_CHECKING

from signoff.domain.errors import Unauthenticated
from signoff.domain.events import TokenCreated
from signoff.domain.identity import User

if TYPE_CHECKING:
    from signoff.services.dependencies import Services


class TokenCache:
    """Recently verified tokens, so a busy client does not cost a query per call.

    Holds only token hashes that matched, for ``ttl`` seconds (a revoked token stops
    working within that time); unknown tokens are always checked against the database.
    """

    def __init__(self, ttl: float = 5.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[str, float]] = {}

    def get(self, token_hash: str) -> str | None:
        hit = self._entries.get(token_hash)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, token_hash: str, user: str) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[token_hash] = (user, time.monotonic() + self.ttl)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(svc: Services, user_name: str, label: str = "") -> str:
    """A new API token for a user; the plain token is returned once and stored hashed."""
    svc.directory.user(user_name)
    token = "so_" + secrets.token_urlsafe(32)
    with svc.uow() as uow:
        now = svc.clock.now()
        uow.tokens.add(svc.new_id(), user_name, hash_token(token), label, now)
        uow.audit.append(now, None, TokenCreated(actor="admin", user=user_name, label=label))
        uow.commit()
    return token


def authenticate_cached(svc: Services, token: str) -> User | None:
    """The user of a recently verified token, without touching the database."""
    name = svc.token_cache.get(hash_token(token))
    return svc.directory.users.get(name) if name is not None else None


def authenticate(svc: Services, token: str) -> User:
    cached = authenticate_cached(svc, token)
    if cached is not None:
        return cached
    digest = hash_token(token)
    with svc.uow(write=False) as uow:
        name = uow.tokens.user_for(digest)
    if name is None or name not in svc.directory.users:
        raise Unauthenticated("the API token is not valid")
    svc.token_cache.put(digest, name)
    return svc.directory.user(name)
