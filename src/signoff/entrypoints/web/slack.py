"""Slack interactivity: button clicks and the deny-reason modal.

Every call is verified with the app's signing secret and a five-minute timestamp window
(``slack_sdk.signature.SignatureVerifier``); forged or replayed calls get 401. The Slack
user is mapped to a Signoff user (an explicit map first, else by the email of their
Slack profile), and the vote goes through the same use case as the API, so every rule
holds; a refusal is told to the clicker privately (an ephemeral message).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from signoff.adapters.channels.slack import SlackPeople
from signoff.bootstrap import App
from signoff.domain.errors import SignoffError
from signoff.domain.identity import User
from signoff.domain.requests import Decision
from signoff.services import requests as use_cases

log = logging.getLogger("signoff.slack")


def router(app: App) -> APIRouter:
    api = APIRouter(tags=["slack"])
    settings = app.settings
    verifier = SignatureVerifier(settings.slack_signing_secret)
    client = WebClient(token=settings.slack_token, base_url=settings.slack_api_url)
    signoff_user = SlackPeople(client, app.directory, settings.slack_users).user

    def tell(response_url: str | None, text: str) -> None:
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
            use_cases.cast_vote(app.services, user, request_id, decision, comment)
        except SignoffError as exc:
            return exc.detail
        return None

    @api.post("/slack/interactions", include_in_schema=False)
    async def interactions(request: Request) -> Response:
        body = await request.body()
        if not settings.slack_signing_secret or not verifier.is_valid(
            body,
            request.headers.get("X-Slack-Request-Timestamp"),
            request.headers.get("X-Slack-Signature"),
        ):
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        try:
            payload: dict[str, Any] = json.loads(parse_qs(body.decode())["payload"][0])
        except (KeyError, ValueError, UnicodeDecodeError):
            return JSONResponse({"error": "no payload"}, status_code=400)
        from fastapi.concurrency import run_in_threadpool

        return await run_in_threadpool(handle, payload)

    def handle(payload: dict[str, Any]) -> Response:
        slack_user = str(payload.get("user", {}).get("id", ""))
        user = signoff_user(slack_user)
        response_url = payload.get("response_url")
        if payload.get("type") == "block_actions":
            action = (payload.get("actions") or [{}])[0]
            request_id = str(action.get("value", ""))
            if user is None:
                tell(response_url, "Your Slack account is not linked to a Signoff user.")
                return Response(status_code=200)
            if action.get("action_id") == "approve":
                problem = vote(user, request_id, Decision.APPROVE, "approved in Slack")
                if problem:
                    tell(response_url, f"Not recorded: {problem}")
                return Response(status_code=200)
            if action.get("action_id") == "deny":
                client.views_open(
                    trigger_id=str(payload.get("trigger_id", "")),
                    view={
                        "type": "modal",
                        "callback_id": "deny",
                        "private_metadata": json.dumps(
                            {"request_id": request_id, "response_url": response_url}
                        ),
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
                                },
                            }
                        ],
                    },
                )
            return Response(status_code=200)
        if payload.get("type") == "view_submission":
            view = payload.get("view", {})
            meta = json.loads(view.get("private_metadata") or "{}")
            values = view.get("state", {}).get("values", {})
            reason = str(values.get("reason", {}).get("text", {}).get("value") or "")
            if user is None:
                return JSONResponse(
                    {
                        "response_action": "errors",
                        "errors": {"reason": "Your Slack account is not linked to Signoff."},
                    }
                )
            problem = vote(user, str(meta.get("request_id", "")), Decision.DENY, reason)
            if problem:
                return JSONResponse(
                    {"response_action": "errors", "errors": {"reason": problem[:150]}}
                )
            return Response(status_code=200)
        return Response(status_code=200)

    return api
