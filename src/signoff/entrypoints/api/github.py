"""GitHub's webhook: deployment protection rules become requests (docs/github.md).

``POST /integrations/github/webhook`` checks ``X-Hub-Signature-256`` over the raw body
with the App's webhook secret before reading anything (unsigned or forged: 401). A
``ping`` is answered; a ``deployment_protection_rule`` delivery with action
``requested`` becomes a request (``services/github.gate_deployment``), 201; a delivery
received before (its ``X-GitHub-Delivery`` id, or its run and environment) is answered
200 and does nothing; other events and actions are answered 200 and ignored. A payload
that is not what GitHub documents is a 400 (not JSON) or a 422 problem naming the field.
The body is JSON, or form-encoded with the JSON in its ``payload`` field (the App's
webhook content type may be either).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from signoff.adapters.github import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    signature_ok,
)
from signoff.bootstrap import App
from signoff.domain.errors import InvalidInput, Unauthenticated
from signoff.domain.limits import MAX_INT
from signoff.services.github import Commit, DeploymentAsk, gate_deployment

PATH = "/integrations/github/webhook"
EVENT = "deployment_protection_rule"
RUN_IN_CALLBACK = re.compile(
    r"/repos/[^/]+/[^/]+/actions/runs/([1-9]\d{0,17})/deployment_protection_rule$"
)

Text = Annotated[str, Field(min_length=1, max_length=255)]
Url = Annotated[str, Field(max_length=2000, pattern=r"^https?://[^\s]+$")]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # stored text holds no NUL (PostgreSQL refuses it; domain/limits.py)
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("contains a NUL character, which is not allowed")
        return value


class _Repository(_Payload):
    full_name: Annotated[str, Field(max_length=200, pattern=r"^[\w.-]+/[\w.-]+$")]
    html_url: Url


class _Installation(_Payload):
    id: Annotated[int, Field(gt=0, le=MAX_INT)]


class _Sender(_Payload):
    login: Annotated[str, Field(min_length=1, max_length=100)]


class _Ref(_Payload):
    ref: Text | None = None
    sha: Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$")] | None = None


class _PullRequest(_Payload):
    html_url: Url | None = None
    base: _Ref | None = None


class _Commit(_Payload):
    id: Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$")]
    message: Annotated[str, Field(max_length=20_000)] = ""


class ProtectionRuleDelivery(_Payload):
    """The fields of a ``deployment_protection_rule`` delivery Signoff reads."""

    action: Annotated[str, Field(max_length=50)]
    environment: Text
    event: Annotated[str, Field(max_length=100)] = ""
    ref: Text
    sha: Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$")]
    deployment_callback_url: Url
    pull_requests: Annotated[list[_PullRequest], Field(max_length=50)] = []
    commits: Annotated[list[_Commit], Field(max_length=250)] = []
    repository: _Repository
    installation: _Installation
    sender: _Sender


def ask_of(delivery_id: str, p: ProtectionRuleDelivery) -> DeploymentAsk:
    found = RUN_IN_CALLBACK.search(p.deployment_callback_url.split("?", 1)[0])
    if found is None:
        raise InvalidInput(
            "deployment_callback_url does not name a workflow run "
            "(…/repos/OWNER/REPO/actions/runs/ID/deployment_protection_rule)",
            field="deployment_callback_url",
        )
    base = next((pr.base for pr in p.pull_requests if pr.base is not None), None)
    return DeploymentAsk(
        delivery_id=delivery_id,
        repository=p.repository.full_name,
        html_url=p.repository.html_url.rstrip("/"),
        environment=p.environment,
        run_id=int(found.group(1)),
        installation_id=p.installation.id,
        ref=p.ref,
        sha=p.sha,
        event=p.event or "unknown",
        sender=p.sender.login,
        base=(base.sha or base.ref) if base is not None else None,
        pull_requests=tuple(pr.html_url for pr in p.pull_requests if pr.html_url),
        commits=tuple(Commit(c.id, (c.message.splitlines() or [""])[0][:200]) for c in p.commits),
    )


def router(app: App) -> APIRouter:
    r = APIRouter(tags=["integrations"])
    secret = app.settings.github_webhook_secret.get_secret_value()
    service = app.settings.github_requester
    public_url = app.settings.public_url.rstrip("/")

    @r.post(
        PATH,
        status_code=201,
        summary="GitHub's deployment protection rule deliveries (the App's webhook)",
        responses={
            200: {"description": "A ping, a replay, or an event Signoff ignores"},
            401: {"description": "Unsigned, or not signed with the webhook secret"},
        },
    )
    async def webhook(request: Request) -> JSONResponse:
        body = await request.body()
        if not signature_ok(secret, body, request.headers.get(SIGNATURE_HEADER)):
            raise Unauthenticated(
                f"the delivery is not signed with the App's webhook secret ({SIGNATURE_HEADER})"
            )
        event = request.headers.get(EVENT_HEADER, "")
        if event == "ping":
            return JSONResponse({"ok": True, "event": "ping"}, status_code=200)
        if event != EVENT:
            return JSONResponse({"ignored": True, "event": event[:100]}, status_code=200)
        delivery_id = request.headers.get(DELIVERY_HEADER, "").strip()
        if not delivery_id or len(delivery_id) > 100 or "\x00" in delivery_id:
            raise InvalidInput(
                f"the {DELIVERY_HEADER} header is missing"
                if not delivery_id
                else f"the {DELIVERY_HEADER} header is not a delivery id (at most 100 characters)",
                field=DELIVERY_HEADER,
            )
        payload = _parse(body, request.headers.get("content-type", ""))
        if payload.get("action") != "requested":
            return JSONResponse(
                {"ignored": True, "event": event, "action": str(payload.get("action"))[:50]},
                status_code=200,
            )
        try:
            delivery = ProtectionRuleDelivery.model_validate(payload)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()))
            raise InvalidInput(f"{where}: {err.get('msg', 'invalid')}", field=where) from None
        ask = ask_of(delivery_id, delivery)
        gated = await run_in_threadpool(gate_deployment, app.services, ask, service)
        req = gated.request
        return JSONResponse(
            {
                "request_id": req.id,
                "status": req.status.value,
                "url": f"{public_url}/requests/{req.id}",
                "replay": gated.replay,
                "folded": gated.folded,
            },
            status_code=200 if gated.replay else 201,
        )

    return r


def _parse(body: bytes, content_type: str) -> dict[str, Any]:
    """The delivery's JSON object: the body, or, for a webhook whose content type is
    ``application/x-www-form-urlencoded`` (a choice in the App's settings), its
    ``payload`` field."""
    if content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            fields = urllib.parse.parse_qs(body.decode("utf-8"), strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            fields = {}
        if len(fields.get("payload", [])) != 1:
            raise InvalidInput(
                "the delivery is form-encoded but has no single payload field", field="payload"
            )
        body = fields["payload"][0].encode("utf-8")
    try:
        found = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the delivery's body is not JSON") from None
    if not isinstance(found, dict):
        raise InvalidInput("the delivery's body is not a JSON object")
    return found
