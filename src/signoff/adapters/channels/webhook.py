"""The generic webhook channel: a signed JSON POST.

Every delivery carries three headers:

- ``Signoff-Event-Id``: the outbox row id; the same on every retry, so receivers can
  drop duplicates (delivery is at least once);
- ``Signoff-Timestamp``: Unix seconds when this attempt was signed;
- ``Signoff-Signature``: ``v1=`` and the hex HMAC-SHA256, keyed with the webhook's
  secret, of ``"{timestamp}.{body}"`` (the raw body bytes).

A receiver recomputes the HMAC over the raw body, compares in constant time, and refuses
timestamps older than a few minutes (replays). ``verify_signature`` below does exactly
that and is the recipe documented in docs/notifications.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping

import httpx

from signoff.services.ports import DeliveryError, Notification

SIGNATURE_HEADER = "Signoff-Signature"
TIMESTAMP_HEADER = "Signoff-Timestamp"
EVENT_ID_HEADER = "Signoff-Event-Id"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance: int = 300,
) -> bool:
    """True if the headers carry a valid, fresh signature of ``body``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        timestamp = int(lowered[TIMESTAMP_HEADER.lower()])
        given = lowered[SIGNATURE_HEADER.lower()]
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    return hmac.compare_digest(given, sign(secret, timestamp, body))


class WebhookChannel:
    keeps_message_updated = False
    personal = False
    # a feed for another system (a SIEM, an automation): it hears of every change, even
    # a decision the requester read in the answer to their own call
    feed = True

    def __init__(
        self,
        name: str,
        url: str,
        secret: str,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.secret = secret
        self.client = httpx.Client(timeout=timeout, transport=transport)

    def send(self, notification: Notification) -> None:
        body = json.dumps(
            {"id": notification.id, **notification.payload},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: str(notification.id),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
        }
        try:
            resp = self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if resp.status_code >= 300:
            raise DeliveryError(f"HTTP {resp.status_code}: {resp.text[:200]}")

    def close(self) -> None:
        self.client.close()
