"""Slack interactivity: button clicks and the deny-reason modal.

Every call is verified with the app's signing secret and a five-minute timestamp window
(``slack_sdk.signature.SignatureVerifier``); forged, replayed or malformed-signature
calls get 401. The Slack user is mapped to a Signoff user (``SlackPeople``: an explicit
map first, else by the email of their Slack profile), and the vote goes through the
same use case as the API, so every rule holds; a refusal is told to the clicker
privately (an ephemeral message). A signed payload of an unexpected shape is answered
200 (Slack shows nothing, or our ephemeral note), never an error page.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from signoff.adapters.channels.slack import SlackPeople
from signoff.bootstrap import App
from signoff.domain.errors import SignoffError
from signoff.domain.identity import User
from signoff.domain.requests import MAX_TEXT, Decision
from signoff.services import requests as use_cases

log = logging.getLogger("signoff.slack")
NOT_LINKED = "Your Slack account is not linked to a Signoff user."


def text_at(value: Any, *path: str) -> str:
    """The string at ``path`` in nested objects, or "" when anything on the way is not
    what Slack documents (a payload's shape is never trusted)."""
    for key in path:
        if not isinstance(value, dict):
            return ""
        value = value.get(key)
    return value if isinstance(value, str) else ""


def first_action(payload: dict[str, Any]) -> dict[str, Any]:
    actions = payload.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        return actions[0]
    return {}


def deny_modal(request_id: str, response_url: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "deny",
        "private_metadata": json.dumps({"request_id": request_id, "response_url": response_url}),
        "title": {"type": "plain_text", "text": "Deny request"},
        "submit": {"type": "plain_text", "text": "Deny"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Why?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "text",
                    "multiline": True,
                    "max_length": 3000,
                },
            }
        ],
    }


def modal_error(text: str) -> JSONResponse:
    return JSONResponse({"response_action": "errors", "errors": {"reason": text[:150]}})


def router(app: App) -> APIRouter:
    api = APIRouter(tags=["slack"])
    settings = app.settings
    verifier = SignatureVerifier(settings.slack_signing_secret)
    client = WebClient(token=settings.slack_token, base_url=settings.slack_api_url, timeout=10)
    people = SlackPeople(client, app.directory, settings.slack_users)

    def tell(response_url: str, text: str) -> None:
        if not response_url:
            return
        try:
            httpx.post(
                response_url,
                json={"response_type": "ephemeral", "replace_original": False, "text": text},
                timeout=5,
            )
        except httpx.HTTPError as exc:
            log.warning("could not answer Slack: %s", exc)

    def vote(user: User, request_id: str, decision: Decision, comment: str) -> str | None:
        try:
            use_cases.cast_vote(app.services, user, request_id, decision, comment, channel="slack")
        except SignoffError as exc:
            return exc.detail
        return None

    def signed(body: bytes, request: Request) -> bool:
        if not settings.slack_signing_secret:
            return False
        try:
            return verifier.is_valid(
                body,
                request.headers.get("X-Slack-Request-Timestamp", ""),
                request.headers.get("X-Slack-Signature", ""),
            )
        except (ValueError, TypeError):  # e.g. a timestamp that is not a number
            return False

    @api.post("/slack/interactions", include_in_schema=False)
    async def interactions(request: Request) -> Response:
        body = await request.body()
        if not signed(body, request):
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        try:
            payload = json.loads(parse_qs(body.decode())["payload"][0])
        except (KeyError, IndexError, ValueError, RecursionError):
            return JSONResponse({"error": "no payload"}, status_code=400)
        if not isinstance(payload, dict):
            return Response(status_code=200)
        return await run_in_threadpool(handle, payload)

    def handle(payload: dict[str, Any]) -> Response:
        kind = payload.get("type")
        response_url = text_at(payload, "response_url")
        user = people.user(text_at(payload, "user", "id"))
        if kind == "block_actions":
            return clicked(payload, user, response_url)
        if kind == "view_submission":
            return submitted(payload, user)
        return Response(status_code=200)

    def clicked(payload: dict[str, Any], user: User | None, response_url: str) -> Response:
        action = first_action(payload)
        request_id = text_at(action, "value")
        if user is None:
            tell(response_url, NOT_LINKED)
            return Response(status_code=200)
        if not request_id:
            return Response(status_code=200)
        if action.get("action_id") == "approve":
            problem = vote(user, request_id, Decision.APPROVE, "approved in Slack")
            if problem:
                tell(response_url, f"Not recorded: {problem}")
        elif action.get("action_id") == "deny":
            try:
                client.views_open(
                    trigger_id=text_at(payload, "trigger_id"),
                    view=deny_modal(request_id, response_url),
                )
            except Exception as exc:  # Slack unreachable or refusing: say so, privately
                log.warning("could not open the deny form: %s", exc)
                tell(
                    response_url,
                    "Could not open the deny form; try again, or deny in Signoff "
                    f"(signoff deny {request_id} --comment '...').",
                )
        return Response(status_code=200)

    def submitted(payload: dict[str, Any], user: User | None) -> Response:
        if user is None:
            return modal_error(NOT_LINKED)
        try:
            meta = json.loads(text_at(payload, "view", "private_metadata") or "{}")
        except (ValueError, RecursionError):
            meta = None
        request_id = text_at(meta, "request_id")
        if not request_id:
            return modal_error("This form cannot be read any more; deny in Signoff instead.")
        view = payload.get("view")
        reason = text_at(view, "state", "values", "reason", "text", "value")[:MAX_TEXT]
        problem = vote(user, request_id, Decision.DENY, reason)
        return modal_error(problem) if problem else Response(status_code=200)

    return api
