"""The Slack channel: one Block Kit message per request in a Slack channel, with
Approve and Deny buttons, updated in place after every change.

The (channel, ts) of each message is stored in the database, so any replica, and the
same one after a restart, updates the message rather than posting a new one. All
user-supplied text is escaped for mrkdwn; long parameters are shown as truncated code
blocks with a link to the full view. Clicks come back through ``/slack/interactions``
(see ``entrypoints/web/slack.py``), verified with Slack's signing secret, and vote
through the same use case as the API.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine

from signoff.adapters.channels import messages
from signoff.adapters.db import tables as t
from signoff.domain.identity import Directory, User
from signoff.domain.requests import Request, Status
from signoff.services.messages import REQUESTER, Message, summarize
from signoff.services.ports import DeliveryError, Notification, RequestReader

CODE_LIMIT = 2500
log = logging.getLogger("signoff.slack")


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as Slack documents."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_block(text: str) -> str:
    body = escape(text).replace("```", "`\u200b``")
    if len(body) > CODE_LIMIT:
        body = body[:CODE_LIMIT] + "\n…"
    return f"```{body}```"


def render(
    request: Request, view_url: str, executes: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """The message for a request in its current state: (fallback text, blocks), from
    the same rows every channel shows (``messages.context_rows``)."""
    r = summarize(request, executes)
    status = request.status.value
    summary = f"{r.type} on {r.target} by {r.requester}: {messages.said(status)}"
    rows = messages.context_rows(r, status)
    lines = "\n".join(f"*{k}:* {escape(v)}" for k, v in rows)
    head = "Approval request" + (f" · risk {r.risk.upper()}" if r.risk else "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": lines[:2900]}},
    ]
    for k, v in r.params.items():
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{escape(str(k))}*\n{code_block(v)}"},
            }
        )
    state = f"*{messages.said(status).capitalize()}*"
    if request.fold_count:
        state += f"; asked {request.fold_count + 1} times"
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": state},
                {"type": "mrkdwn", "text": f"<{view_url}|Full details>"},
            ],
        }
    )
    if request.status is Status.PENDING:
        blocks.append(vote_buttons(request.id))
    return summary, blocks


@contextmanager
def slack_errors() -> Iterator[None]:
    """Slack's refusals and network failures, as delivery errors (retried, then
    dead-lettered)."""
    try:
        yield
    except SlackApiError as exc:
        raise DeliveryError(f"Slack: {exc.response.get('error', exc)}") from None
    except OSError as exc:
        raise DeliveryError(f"Slack unreachable: {exc}") from None


def vote_buttons(request_id: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": f"vote:{request_id}",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": request_id,
            },
            {
                "type": "button",
                "action_id": "deny",
                "style": "danger",
                "text": {"type": "plain_text", "text": "Deny"},
                "value": request_id,
            },
        ],
    }


class MessageRefs:
    """Where each request's Slack messages are (channel id and ``ts``), in the database,
    so any replica, and the same one after a restart, updates them in place. ``key`` is
    the Signoff channel (``slack:#prod``) or ``slack:dm:PERSON``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def find(self, request_id: str, prefix: str) -> dict[str, tuple[str, str]]:
        """key -> (Slack channel, ts) for the keys starting with ``prefix``."""
        m = t.slack_messages
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(m.c.channel, m.c.slack_channel, m.c.ts).where(
                    m.c.request_id == request_id, m.c.channel.startswith(prefix)
                )
            )
            return {r[0]: (r[1], r[2]) for r in rows}

    def add(self, request_id: str, key: str, where: str, ts: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                t.slack_messages.insert(),
                {"request_id": request_id, "channel": key, "slack_channel": where, "ts": ts},
            )


class SlackPeople:
    """Who is who between Signoff and Slack, in both directions, in one place: the
    explicit map of settings (``SIGNOFF_SLACK_USERS``, Slack id -> user), the ``slack``
    id of a profile in users.yaml, else the email address (looked up in Slack)."""

    def __init__(self, client: WebClient, directory: Directory, slack_users: dict[str, str]):
        self.client = client
        self.directory = directory
        self.explicit = dict(slack_users)
        self.known = {user: slack_id for slack_id, user in slack_users.items()}
        self.by_email = {u.email.lower(): u for u in directory.users.values() if u.email}
        self.by_id = {u.slack_id: u for u in directory.users.values() if u.slack_id}

    def slack_id(self, person: str) -> str | None:
        """The Slack id of a Signoff user (users.lookupByEmail when only the email is
        known), or None when Slack does not know them."""
        if person in self.known:
            return self.known[person]
        user = self.directory.users.get(person)
        if user is None:
            return None
        found: str | None = None
        if user.slack_id:
            found = user.slack_id
        elif user.email:
            try:
                found = str(self.client.users_lookupByEmail(email=user.email)["user"]["id"])
            except SlackApiError as exc:
                if exc.response.get("error") != "users_not_found":
                    raise
        if found is not None:
            self.known[person] = found
        return found

    def user(self, slack_id: str) -> User | None:
        """The Signoff user behind a Slack id (users.info for the profile's email), or
        None when they are not linked."""
        name = self.explicit.get(slack_id)
        if name is not None:
            return self.directory.users.get(name)
        if slack_id in self.by_id:
            return self.by_id[slack_id]
        if not slack_id:
            return None
        try:
            info = self.client.users_info(user=slack_id)
            email = str(info["user"].get("profile", {}).get("email", "")).lower()
        except Exception as exc:  # Slack refusing or unreachable: not linked, for now
            log.warning("could not look up Slack user %s: %s", slack_id, exc)
            return None
        return self.by_email.get(email)


def current(read: RequestReader, n: Notification) -> Request | None:
    """The request a notification is about, as it is now (messages show the present)."""
    return read(n.request_id) if n.request_id is not None else None


class SlackChannel:
    """``slack:#channel`` (or ``slack:C0123``): the request's message in that channel."""

    keeps_message_updated = True
    personal = False

    def __init__(
        self,
        name: str,
        client: WebClient,
        read: RequestReader,
        refs: MessageRefs,
        public_url: str,
    ) -> None:
        self.name = name
        self.target = name.split(":", 1)[1]
        self.client = client
        self.read = read
        self.refs = refs
        self.public_url = public_url.rstrip("/")

    def send(self, n: Notification) -> None:
        request = current(self.read, n)
        if request is None:
            return
        text, blocks = render(request, f"{self.public_url}/requests/{request.id}")
        row = self.refs.find(request.id, self.name).get(self.name)
        with slack_errors():
            if row is not None:
                self.client.chat_update(channel=row[0], ts=row[1], text=text, blocks=blocks)
            elif request.status is Status.PENDING:  # never post news nobody was asked about
                resp = self.client.chat_postMessage(channel=self.target, text=text, blocks=blocks)
                self.refs.add(request.id, self.name, str(resp["channel"]), str(resp["ts"]))


DM_PREFIX = "slack:dm:"


class SlackDirectChannel:
    """``slack:dm``: each approver gets the request's message as a direct message, kept
    up to date like a channel message; requesters get their news the same way.

    A Signoff user is found in Slack by the ``slack`` id in their profile, the explicit
    map of settings, or their email (users.lookupByEmail)."""

    name = "slack:dm"
    keeps_message_updated = True
    personal = True

    def __init__(
        self,
        client: WebClient,
        read: RequestReader,
        refs: MessageRefs,
        public_url: str,
        people: SlackPeople,
    ) -> None:
        self.client = client
        self.read = read
        self.refs = refs
        self.public_url = public_url.rstrip("/")
        self.slack_id = people.slack_id

    def _stored(self, request_id: str) -> dict[str, tuple[str, str]]:
        """person -> (Slack channel, ts) of the DMs about this request."""
        found = self.refs.find(request_id, DM_PREFIX)
        return {key[len(DM_PREFIX) :]: ref for key, ref in found.items()}

    def send(self, n: Notification) -> None:
        request = current(self.read, n)
        if request is None:
            return
        p = n.message
        view = f"{self.public_url}/requests/{request.id}"
        text, blocks = render(request, view)
        with slack_errors():
            stored = self._stored(request.id)
            posted = set()
            if p.asks_to_vote and request.status is Status.PENDING:
                for person in p.to:
                    if person in stored:  # a reminder or escalation: in its thread
                        where, ts = stored[person]
                        self.client.chat_postMessage(
                            channel=where, thread_ts=ts, text=escape(messages.title(p))
                        )
                        continue
                    target = self.slack_id(person)
                    if target is None:
                        continue
                    resp = self.client.chat_postMessage(channel=target, text=text, blocks=blocks)
                    key = DM_PREFIX + person
                    self.refs.add(request.id, key, str(resp["channel"]), str(resp["ts"]))
                    posted.add(person)
            elif p.audience == REQUESTER:
                for person in p.to:
                    target = self.slack_id(person)
                    if target is not None:
                        self.client.chat_postMessage(channel=target, **news_message(p, view))
            for person, (where, ts) in stored.items():
                if person not in posted:
                    self.client.chat_update(channel=where, ts=ts, text=text, blocks=blocks)

    def send_digest(self, person: str, notifications: list[Notification]) -> None:
        """One direct message listing the requests of the window, each with its buttons."""
        pending = []
        for n in notifications:
            request = current(self.read, n)
            if request is not None and request.status is Status.PENDING:
                pending.append(request)
        if not pending:
            return
        head = f"{len(pending)} requests await your approval"
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": head}}
        ]
        for request in pending[:15]:  # Slack allows 50 blocks a message
            a = request.action
            line = (
                f"*{escape(a.type)}* on *{escape(a.target)}* by {escape(request.requester)}: "
                f"{escape(request.reason or '-')} "
                f"(<{self.public_url}/requests/{request.id}|details>)"
            )
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line[:2900]}})
            blocks.append(vote_buttons(request.id))
        if len(pending) > 15:
            more = f"and {len(pending) - 15} more in the inbox: `signoff inbox`"
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
        with slack_errors():
            target = self.slack_id(person)
            if target is not None:
                self.client.chat_postMessage(channel=target, text=head, blocks=blocks)


def news_message(p: Message, view: str) -> dict[str, Any]:
    """A requester's news: what happened, who decided and why, what to do next."""
    lines = "\n".join(escape(line) for line in messages.news(p))
    head = escape(messages.title(p))
    return {
        "text": head,
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{head}*\n{lines}"[:2900]},
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{view}|Full details>"}],
            },
        ],
    }
