"""Policies (a dry run of the policy set) and the audit log (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from signoff.adapters.policy_files import load_sent_policy_set
from signoff.bootstrap import App
from signoff.domain.limits import MAX_INT
from signoff.entrypoints.api.callers import ERRORS, CurrentUser
from signoff.entrypoints.api.requests import to_action
from signoff.entrypoints.api.schemas import EvaluateIn, ReplayIn
from signoff.services import analytics, policy_replay, views
from signoff.services import requests as use_cases


def router(app: App) -> APIRouter:
    api = APIRouter()
    svc = app.services

    @api.post("/v1/policies/evaluate", tags=["policies"], responses=ERRORS)
    def evaluate(body: EvaluateIn, user: CurrentUser) -> dict[str, Any]:
        context = body.context.model_dump(exclude_none=True)
        subject, decision = use_cases.explain(
            svc, user, to_action(body.action), context, body.ticket, as_user=body.as_user
        )
        return {
            "as": subject.name,
            "policy_set_digest": svc.policies.digest,
            **decision.as_dict(),
        }

    @api.post("/v1/policies/replay", tags=["policies"], responses=ERRORS)
    def replay(body: ReplayIn, user: CurrentUser) -> dict[str, Any]:
        """Admins: judge a candidate policy set (its files, as text) against the stored
        asks of a window, next to the current set, and say what would change."""
        user.require_admin("replay a policy set against history")
        candidate = load_sent_policy_set(body.files, svc.directory)
        start, end = analytics.window(svc.clock.now(), body.since, body.until)
        result = policy_replay.replay(svc, user, candidate, start, end)
        return {"candidate_digest": candidate.digest, **result.as_dict()}

    @api.get("/v1/audit", tags=["audit"], responses=ERRORS)
    def audit(
        user: CurrentUser,
        after: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        items = [e.as_dict() for e in views.audit_page(svc, user, after, limit)]
        return {"items": items, "next_after": items[-1]["seq"] if items else after}

    @api.get("/v1/audit/verify", tags=["audit"], responses=ERRORS)
    def audit_verify(user: CurrentUser) -> dict[str, Any]:
        return views.audit_report(svc, user).as_dict()

    @api.post("/v1/audit/checkpoints", tags=["audit"], responses=ERRORS)
    def audit_checkpoint(user: CurrentUser) -> dict[str, Any]:
        """Sign the chain's head now and write it to the configured checkpoint sinks."""
        made = app.checkpoint(by=user)
        return {"checkpoint": made.as_dict() if made is not None else None}

    return api
