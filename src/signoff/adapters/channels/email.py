"""The ``email`` channel: plain-text and HTML mail with signed Approve and Deny links.

Each approver who can vote gets their own links, bound to them, to the request and to
the decision, expiring and single-use. A link opens a confirmation page (GET changes
nothing, so mail scanners that prefetch links cannot vote); the button on that page
POSTs the vote. Every piece of user-supplied text is escaped in the HTML part.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from signoff.adapters.signing import VoteLinkSigner
from signoff.domain.identity import Directory
from signoff.services.ports import DeliveryError, Notification

VOTE_EVENTS = frozenset(
    {"request.submitted", "stage.advanced", "stage.escalated", "request.reminded"}
)
HEADLINES = {
    "request.submitted": "Approval needed",
    "stage.advanced": "Approval needed (next stage)",
    "stage.escalated": "Escalated to you: approval needed",
    "request.reminded": "Reminder: approval needed",
    "request.approved": "Your request was approved",
    "request.denied": "Your request was denied",
    "request.cancelled": "Request cancelled",
    "request.revoked": "Your grant was revoked",
    "request.executed": "Your grant was used",
    "request.timed_out": "Your request timed out",
    "grant.expiring": "Your grant expires soon",
    "request.expired": "Your grant expired unused",
}


class EmailChannel:
    name = "email"
    keeps_message_updated = False

    def __init__(
        self,
        *,
        directory: Directory,
        links: VoteLinkSigner,
        clock_now: Callable[[], datetime],
        public_url: str,
        link_ttl: timedelta,
        sender: str,
        host: str,
        port: int,
        starttls: bool = False,
        use_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.directory = directory
        self.links = links
        self.clock_now = clock_now
        self.public_url = public_url.rstrip("/")
        self.link_ttl = link_ttl
        self.sender = sender
        self.smtp: dict[str, Any] = {
            "hostname": host,
            "port": port,
            "start_tls": starttls,
            "use_tls": use_tls,
            "username": username or None,
            "password": password or None,
            "timeout": timeout,
        }

    def messages(self, n: Notification) -> list[EmailMessage]:
        p = n.payload
        out = []
        for name in p.get("to", []):
            user = self.directory.users.get(name)
            if user is None or not user.email:
                continue
            links = None
            if p.get("event") in VOTE_EVENTS:
                expires = self.clock_now() + self.link_ttl
                rid = p["request"]["id"]
                links = {
                    d: f"{self.public_url}/links/{self.links.issue(name, rid, d, expires)}"
                    for d in ("approve", "deny")
                }
            out.append(self._compose(user.email, p, links))
        return out

    def _compose(self, to: str, p: dict[str, Any], links: dict[str, str] | None) -> EmailMessage:
        r = p["request"]
        action = r["action"]
        headline = HEADLINES.get(p["event"], p["event"])
        msg = EmailMessage()
        msg["Subject"] = f"[Signoff] {headline}: {action['type']} on {action['target']}"
        msg["From"] = self.sender
        msg["To"] = to
        rows = [
            ("Action", f"{action['type']} on {action['target']}"),
            ("Requester", r["requester"]),
            ("Reason", r.get("reason") or "-"),
            ("Ticket", r.get("ticket") or "-"),
            ("Policy", r["policy"]),
            ("Status", p["status"]),
        ]
        params = action.get("params") or {}
        view = f"{self.public_url}/v1/requests/{r['id']}"
        text = [headline, ""]
        text += [f"{k}: {v}" for k, v in rows]
        for k, v in params.items():
            text += [f"{k}:", *("    " + line for line in str(v).splitlines())]
        if links:
            text += ["", f"Approve: {links['approve']}", f"Deny: {links['deny']}"]
        text += ["", f"Details: {view}"]
        msg.set_content("\n".join(text))
        e = html.escape
        cells = "".join(f"<tr><th align=left>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
        code = "".join(
            f"<p><b>{e(str(k))}</b></p><pre>{e(str(v))}</pre>" for k, v in params.items()
        )
        buttons = (
            f'<p><a href="{e(links["approve"])}">Approve</a> &nbsp; '
            f'<a href="{e(links["deny"])}">Deny</a></p>'
            if links
            else ""
        )
        msg.add_alternative(
            f"<html><body><h2>{e(headline)}</h2><table>{cells}</table>{code}{buttons}"
            f'<p><a href="{e(view)}">Details</a></p></body></html>',
            subtype="html",
        )
        return msg

    def send(self, notification: Notification) -> None:
        messages = self.messages(notification)
        if not messages:
            return
        try:
            asyncio.run(self._send_all(messages))
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}") from None

    async def _send_all(self, messages: list[EmailMessage]) -> None:
        client = aiosmtplib.SMTP(**self.smtp)
        async with client:
            for m in messages:
                await client.send_message(m)
