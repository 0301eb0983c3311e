"""The approval flow's analytics: ``GET /v1/analytics/report`` (admins: everything;
others: their own figures as an approver)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from signoff.bootstrap import App
from signoff.entrypoints.api.callers import ERRORS, CurrentUser
from signoff.services import analytics


def router(app: App) -> APIRouter:
    api = APIRouter(tags=["analytics"])
    svc = app.services

    @api.get("/v1/analytics/report", responses=ERRORS)
    def report(
        user: CurrentUser,
        since: Annotated[
            str, Query(max_length=40, description="a duration back from now (30d) or a date")
        ] = "30d",
        until: Annotated[str | None, Query(max_length=40, description="a date; now")] = None,
        policy: Annotated[str | None, Query(max_length=100, description="one policy")] = None,
    ) -> dict[str, Any]:
        """Per policy, per approver and per channel figures over the window, the queue
        now, and the findings with their evidence and a suggested change."""
        start, end = analytics.window(svc.clock.now(), since, until)
        return analytics.report(svc, user, start, end, policy).as_dict()

    return api
