"""Microsoft Teams: Adaptive Cards posted to incoming webhooks (Workflows or connectors).

An incoming webhook can post but not update or identify who clicks, so a button in a
card can only open a link. Signed per-approver vote links (as in email) are therefore
put only in cards that reach that one approver: ``teams:dm`` posts to the webhook in
each person's profile (``teams_webhook``: a Workflows flow that posts to their chat).
``teams:NAME`` posts to a shared channel, where anyone can read the card: it carries the
context and a link to the request, never a link that votes as someone (a shared link
would let any reader vote in an approver's name).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from signoff.adapters.channels import messages
from signoff.domain.identity import Directory
from signoff.services.messages import Message
from signoff.services.ports import DeliveryError, Notification

CARD = "application/vnd.microsoft.card.adaptive"
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!<>~|])")
PARAM_LIMIT = 2000


def escape(text: str) -> str:
    """Card text renders a Markdown subset: user text is escaped so it cannot add links
    or formatting."""
    return _MARKDOWN.sub(r"\\\1", text)


def card(body: list[dict[str, Any]], actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": CARD,
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                    "actions": actions,
                },
            }
        ],
    }


def open_url(title: str, url: str) -> dict[str, Any]:
    return {"type": "Action.OpenUrl", "title": title, "url": url}


def section(p: Message, room: bool = False) -> list[dict[str, Any]]:
    """One request: what happened, the facts, the parameters as monospace text. A room
    hears only the first line of the news (who decided), not the requester's next steps."""
    news = messages.news(p)[:1] if room else messages.news(p)
    blocks: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": escape(line), "wrap": True} for line in news
    ]
    blocks.append(
        {
            "type": "FactSet",
            "facts": [
                {"title": k, "value": escape(str(v))}
                for k, v in messages.context_rows(p.request, p.status)
            ],
        }
    )
    for k, v in p.request.params.items():
        text = str(v)
        if len(text) > PARAM_LIMIT:
            text = text[:PARAM_LIMIT] + "…"
        blocks.append({"type": "TextBlock", "text": escape(str(k)), "weight": "Bolder"})
        blocks.append(
            {"type": "TextBlock", "text": escape(text), "fontType": "Monospace", "wrap": True}
        )
    return blocks


def heading(text: str) -> dict[str, Any]:
    return {"type": "TextBlock", "text": escape(text), "weight": "Bolder", "size": "Medium"}


class _Poster:
    def __init__(self, timeout: float) -> None:
        self.client = httpx.Client(timeout=timeout)

    def post(self, url: str, message: dict[str, Any]) -> None:
        try:
            resp = self.client.post(url, json=message)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"Teams: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 300:
            raise DeliveryError(f"Teams: HTTP {resp.status_code}: {resp.text[:200]}")

    def close(self) -> None:
        self.client.close()


class TeamsRoomChannel(_Poster):
    """``teams:NAME``: a card per request, and one when it ends, in a shared channel."""

    keeps_message_updated = False
    personal = False

    def __init__(self, name: str, url: str, public_url: str, timeout: float = 10.0) -> None:
        super().__init__(timeout)
        self.name = name
        self.url = url
        self.public_url = public_url

    def send(self, n: Notification) -> None:
        p = n.message
        if not messages.for_room(p):
            return
        body = [heading(messages.title(p, room=True)), *section(p, room=True)]
        if p.asks_to_vote:
            who = ", ".join(p.to)
            body.append(
                {
                    "type": "TextBlock",
                    "text": escape(f"Waiting for: {who}. Each of them got their own link."),
                    "wrap": True,
                    "isSubtle": True,
                }
            )
        view = messages.view_url(self.public_url, p)
        self.post(self.url, card(body, [open_url("Open in Signoff", view)]))


class TeamsDirectChannel(_Poster):
    """``teams:dm``: a card to each person's own Teams webhook; approvers' cards carry
    their own signed Approve and Deny links, which open the confirmation page."""

    name = "teams:dm"
    keeps_message_updated = False
    personal = True

    def __init__(
        self,
        directory: Directory,
        vote_links: messages.VoteLinks,
        public_url: str,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(timeout)
        self.directory = directory
        self.vote_links = vote_links
        self.public_url = public_url

    def _hook(self, person: str) -> str | None:
        user = self.directory.users.get(person)
        return user.teams_webhook if user is not None else None

    def _actions(self, person: str, p: Message) -> list[dict[str, Any]]:
        actions = []
        links = self.vote_links(person, p, "teams")
        if links:
            actions += [open_url("Approve", links["approve"]), open_url("Deny", links["deny"])]
        return [*actions, open_url("Details", self.vote_links.view(person, p))]

    def send(self, n: Notification) -> None:
        p = n.message
        for person in p.to:
            hook = self._hook(person)
            if hook:
                body = [heading(messages.title(p)), *section(p)]
                self.post(hook, card(body, self._actions(person, p)))

    def send_digest(self, person: str, notifications: list[Notification]) -> None:
        hook = self._hook(person)
        if not hook:
            return
        body = [heading(f"{len(notifications)} requests await your approval")]
        for n in notifications:
            p = n.message
            body.append(heading(f"{p.request.type} on {p.request.target}"))
            body += section(p)
            body.append({"type": "ActionSet", "actions": self._actions(person, p)})
        self.post(hook, card(body, []))
