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

from typing import Any

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine

from signoff.adapters.db import tables as t
from signoff.domain.errors import NotFound
from signoff.domain.requests import Request, Status
from signoff.services import core
from signoff.services.ports import DeliveryError, Notification

CODE_LIMIT = 2500


def escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as Slack documents."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_block(text: str) -> str:
    body = escape(text).replace("```", "`\u200b``")
    if len(body) > CODE_LIMIT:
        body = body[:CODE_LIMIT] + "\n…"
    return f"```{body}```"


def render(request: Request, view_url: str) -> tuple[str, list[dict[str, Any]]]:
    """The message for a request in its current state: (fallback text, blocks)."""
    a = request.action
    status = request.status.value
    summary = f"{a.type} on {a.target} by {request.requester}: {status}"
    fields = [
        ("Action", a.type),
        ("Target", a.target),
        ("Requester", request.requester),
        ("Policy", request.policy_name),
        ("Reason", request.reason or "-"),
        ("Ticket", request.ticket or "-"),
    ]
    risk = request.context.get("risk")
    if isinstance(risk, str):
        fields.append(("Risk", risk))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Approval request"[:150]}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{escape(str(v))}"} for k, v in fields],
        },
    ]
    for k, v in a.params.items():
        text = v if isinstance(v, str) else str(v)
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{escape(str(k))}*\n{code_block(text)}"},
            }
        )
    votes = ", ".join(f"{v.voter} {v.decision.value}d" for v in request.votes) or "no votes yet"
    if request.status is Status.PENDING:
        state = f"*Pending*: {request.still_needed()} more approval(s) needed; {votes}"
    else:
        state = f"*{status.replace('_', ' ').capitalize()}*; {votes}"
    if request.fold_count:
        state += f"; asked {request.fold_count + 1} times"
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": escape(state)[:2900]},
                {"type": "mrkdwn", "text": f"<{view_url}|Full details>"},
            ],
        }
    )
    if request.status is Status.PENDING:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"vote:{request.id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "approve",
                        "style": "primary",
                        "text": {"type": "plain_text", "text": "Approve"},
                        "value": request.id,
                    },
                    {
                        "type": "button",
                        "action_id": "deny",
                        "style": "danger",
                        "text": {"type": "plain_text", "text": "Deny"},
                        "value": request.id,
                    },
                ],
            }
        )
    return summary, blocks


class SlackChannel:
    """``slack:#channel`` (or ``slack:C0123``): the request's message in that channel."""

    keeps_message_updated = True

    def __init__(
        self, name: str, client: WebClient, svc: core.Services, engine: Engine, public_url: str
    ) -> None:
        self.name = name
        self.target = name.split(":", 1)[1]
        self.client = client
        self.svc = svc
        self.engine = engine
        self.public_url = public_url.rstrip("/")

    def send(self, n: Notification) -> None:
        if n.request_id is None:
            return
        try:
            request = core.get_request(self.svc, n.request_id)
        except NotFound:
            return
        text, blocks = render(request, f"{self.public_url}/v1/requests/{request.id}")
        m = t.slack_messages
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(m.c.slack_channel, m.c.ts).where(
                    m.c.request_id == request.id, m.c.channel == self.name
                )
            ).first()
        try:
            if row is None:
                if request.status is not Status.PENDING:
                    return  # never post news of a request nobody was asked about
                resp = self.client.chat_postMessage(channel=self.target, text=text, blocks=blocks)
                with self.engine.begin() as conn:
                    conn.execute(
                        m.insert(),
                        {
                            "request_id": request.id,
                            "channel": self.name,
                            "slack_channel": str(resp["channel"]),
                            "ts": str(resp["ts"]),
                        },
                    )
            else:
                self.client.chat_update(channel=row[0], ts=row[1], text=text, blocks=blocks)
        except SlackApiError as exc:
            raise DeliveryError(f"Slack: {exc.response.get('error', exc)}") from None
        except OSError as exc:
            raise DeliveryError(f"Slack unreachable: {exc}") from None
