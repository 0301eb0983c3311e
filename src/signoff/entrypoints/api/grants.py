"""Grants: redeem one use for exactly the approved action, revoke, and the public keys
that verify grant tokens offline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from signoff.bootstrap import App
from signoff.entrypoints.api.callers import ERRORS, CurrentUser
from signoff.entrypoints.api.requests import request_out, to_action
from signoff.entrypoints.api.schemas import CommentIn, RedeemIn, RedeemOut, RequestOut
from signoff.services import requests as use_cases


def router(app: App) -> APIRouter:
    api = APIRouter()
    svc = app.services

    @api.get("/.well-known/jwks.json", tags=["grants"])
    def jwks() -> dict[str, Any]:
        return app.keys.jwks()

    @api.post("/v1/grants/redeem", response_model=RedeemOut, tags=["grants"], responses=ERRORS)
    def redeem(body: RedeemIn, user: CurrentUser) -> RedeemOut:
        result = use_cases.redeem_grant(svc, user, body.token, to_action(body.action))
        return RedeemOut(
            ok=True,
            request_id=result.request.id,
            grant_id=result.grant_id,
            uses_left=result.uses_left,
            status=result.request.status.value,
        )

    @api.post(
        "/v1/grants/{grant_id}/revoke", response_model=RequestOut, tags=["grants"], responses=ERRORS
    )
    def revoke(grant_id: str, user: CurrentUser, body: CommentIn | None = None) -> RequestOut:
        r = use_cases.revoke_grant(svc, user, grant_id, body.comment if body else "")
        return request_out(app, r, user)

    return api
