"""``apprise:NAME``: tell a room on any service Apprise supports (Discord, Mattermost,
Telegram, PagerDuty, ...), with a link to the request. Notify-only: nobody votes there."""

from __future__ import annotations

import apprise

from signoff.adapters.channels import messages
from signoff.services.ports import DeliveryError, Notification


class AppriseChannel:
    keeps_message_updated = False
    personal = False

    def __init__(self, name: str, urls: list[str], public_url: str) -> None:
        self.name = name
        self.public_url = public_url
        self.urls = urls
        bad = [u for u in urls if apprise.Apprise.instantiate(u) is None]
        if bad:
            raise ValueError(f"{name}: Apprise does not understand the URL(s) {bad}")

    def send(self, n: Notification) -> None:
        p = n.message
        if not messages.for_room(p):
            return
        lines = messages.news(p)[:1]  # who decided; the requester's next steps are theirs
        lines += [f"{k}: {v}" for k, v in messages.context_rows(p.request, p.status)]
        if p.asks_to_vote:
            lines.append(f"Waiting for: {', '.join(p.to)}")
        lines.append(f"Details: {messages.view_url(self.public_url, p)}")
        sender = apprise.Apprise()
        sender.add(self.urls)
        if not sender.notify(
            title=f"[Signoff] {messages.title(p, room=True)}",
            body="\n".join(lines),
            body_format=apprise.NotifyFormat.TEXT,
        ):
            raise DeliveryError(f"{self.name}: Apprise could not deliver (see the log)")
