"""The ``email`` channel: plain-text and HTML mail with signed Approve and Deny links.

Each approver who can vote gets their own links, bound to them, to the request and to
the decision, expiring and single-use. A link opens a confirmation page (GET changes
nothing, so mail scanners that prefetch links cannot vote); the button on that page
POSTs the vote. Every piece of user-supplied text is escaped in the HTML part.
"""

from __future__ import annotations

import asyncio
import html
import unicodedata
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from signoff.adapters.channels import messages
from signoff.domain.identity import Directory
from signoff.services.messages import Message
from signoff.services.ports import DeliveryError, Notification


def one_line(text: str) -> str:
    """Text for a header or a label: control characters (CR and LF included) become
    spaces, so no value can break a header or start a line of its own."""
    return "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)


def quoted(text: str) -> list[str]:
    """User text of several lines, each visibly quoted ("  > "), so that none of it can
    pass for a line of the message itself (an "Approve: <link>" line, say)."""
    return ["  > " + one_line(line) for line in text.splitlines() or [""]]


def field_lines(label: str, value: str) -> list[str]:
    if "\n" in value or "\r" in value:
        return [f"{label}:", *quoted(value)]
    return [f"{label}: {one_line(value)}"]


def _strong(label: str, text: str) -> str:
    """The risk stands out, so nobody approves a high-risk action on autopilot; links
    (http and https only) can be followed."""
    if label == "Risk":
        return f'<b style="color:#b00020">{text}</b>'
    if label == "Link" and text.startswith(("https://", "http://")):
        return f'<a href="{text}">{text}</a>'
    return text


class EmailChannel:
    name = "email"
    keeps_message_updated = False
    personal = True

    def __init__(
        self,
        *,
        directory: Directory,
        vote_links: messages.VoteLinks,
        public_url: str,
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
        self.vote_links = vote_links
        self.public_url = public_url.rstrip("/")
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

    # Addresses of people the users file does not list (single sign-on): set by
    # bootstrap once the services exist.
    more_addresses: Callable[[str], str | None] | None = None

    def _address(self, person: str) -> str | None:
        user = self.directory.users.get(person)
        if user is not None and user.email:
            return user.email
        return self.more_addresses(person) if self.more_addresses is not None else None

    def messages(self, n: Notification) -> list[EmailMessage]:
        p = n.message
        out = []
        for person in p.to:
            address = self._address(person)
            if address:
                out.append(self._compose(address, p, person))
        return out

    def _section(self, p: Message, person: str) -> tuple[list[str], str]:
        """One request's part of a message to one person: text lines and HTML."""
        links = self.vote_links(person, p, "email")
        rows = messages.context_rows(p.request, p.status)
        params = p.request.params
        view = self.vote_links.view(person, p)
        news = messages.news(p)
        text = [*news, *([""] if news else [])]
        for k, v in rows:
            text += field_lines(k, str(v))
        for k, v in params.items():
            text += [f"{one_line(str(k))}:", *quoted(str(v))]
        if links:
            text += ["", f"Approve: {links['approve']}", f"Deny: {links['deny']}"]
        terminal = messages.vote_commands(p)
        if terminal:
            text += ["", *terminal]
        text += ["", f"Details: {view}"]
        e = html.escape
        said = "".join(
            f"<pre>{e(line.strip())}</pre>" if line.startswith("  ") else f"<p>{e(line)}</p>"
            for line in news
        )
        cells = "".join(
            f"<tr><th align=left>{e(k)}</th><td>{_strong(k, e(str(v)))}</td></tr>" for k, v in rows
        )
        code = "".join(
            f"<p><b>{e(str(k))}</b></p><pre>{e(str(v))}</pre>" for k, v in params.items()
        )
        buttons = (
            f'<p><a href="{e(links["approve"])}">Approve</a> &nbsp; '
            f'<a href="{e(links["deny"])}">Deny</a></p>'
            if links
            else ""
        )
        shell = (
            f"<p>{e(terminal[0])}</p><pre>{e(chr(10).join(c.strip() for c in terminal[1:]))}</pre>"
            if terminal
            else ""
        )
        part = (
            f"{said}<table>{cells}</table>{code}{buttons}{shell}"
            f'<p><a href="{e(view)}">Details</a></p>'
        )
        return text, part

    def _message(self, to: str, subject: str, text: list[str], part: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[Signoff] {one_line(subject)[:200]}"
        msg["From"] = self.sender
        msg["To"] = to
        msg.set_content("\n".join(text))
        msg.add_alternative(f"<html><body>{part}</body></html>", subtype="html")
        return msg

    def _compose(self, to: str, p: Message, person: str) -> EmailMessage:
        text, part = self._section(p, person)
        head = messages.headline(p)
        return self._message(
            to,
            messages.title(p),
            [head, "", *text],
            f"<h2>{html.escape(head)}</h2>{part}",
        )

    def send_digest(self, person: str, notifications: list[Notification]) -> None:
        """One mail to one approver for every request of the window, each with its own
        links."""
        address = self._address(person)
        if not address:
            return
        count = len(notifications)
        text = [f"{count} requests await your approval.", ""]
        parts = [f"<h2>{count} requests await your approval</h2>"]
        for i, n in enumerate(notifications, 1):
            m = n.message
            lines, part = self._section(m, person)
            a = m.request
            text += [f"{i}. {one_line(a.type)} on {one_line(a.target)}", *lines, "", "-" * 40, ""]
            parts.append(f"<hr><h3>{i}. {html.escape(a.type)} on {html.escape(a.target)}</h3>")
            parts.append(part)
        self._deliver(
            [self._message(address, f"{count} requests await your approval", text, "".join(parts))]
        )

    def send(self, notification: Notification) -> None:
        self._deliver(self.messages(notification))

    def _deliver(self, mails: list[EmailMessage]) -> None:
        if not mails:
            return
        try:
            asyncio.run(self._send_all(mails))
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}") from None

    async def _send_all(self, messages: list[EmailMessage]) -> None:
        client = aiosmtplib.SMTP(**self.smtp)
        async with client:
            for m in messages:
                await client.send_message(m)
