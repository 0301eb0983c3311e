"""Operations: liveness, readiness (the database answers; the due queue), metrics, who
the caller is, and how the CLI signs in (``signoff login``)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from signoff.bootstrap import App
from signoff.domain.errors import NotFound
from signoff.domain.limits import shown
from signoff.entrypoints.api.callers import ERRORS, CurrentUser
from signoff.services import analytics, views

FINDINGS_EVERY = 300.0  # seconds between two computations of the findings gauge


def router(app: App) -> APIRouter:
    api = APIRouter()
    svc = app.services
    observer = app.observer

    @api.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", tags=["operations"])
    def readyz() -> JSONResponse:
        # The policy set is loaded before the server starts (or it refuses to start), so
        # readiness is the database answering.
        checks: dict[str, Any] = {
            "policies": len(svc.policies),
            "policy_set_digest": svc.policies.digest,
        }
        try:
            checks["due"], checks["worker_lag_seconds"] = views.due_queue(svc)
            ok = True
        except Exception as exc:  # report, do not crash
            ok = False
            checks["database_error"] = type(exc).__name__
        checks["database"] = ok
        return JSONResponse({"ready": ok, **checks}, status_code=200 if ok else 503)

    @api.get("/v1/me", tags=["operations"], responses=ERRORS)
    def me(user: CurrentUser) -> dict[str, Any]:
        """Who the bearer token stands for, as policies see them: a person of the users
        file, or a workload identity with its token's claims."""
        return {
            "name": user.name,
            "email": user.email,
            "admin": user.admin,
            "groups": sorted(user.groups),
            "claims": shown(dict(user.claims)),
        }

    @api.get("/v1/auth/oidc", tags=["operations"], responses={404: ERRORS[404]})
    def sign_in_settings() -> dict[str, str]:
        """What ``signoff login`` needs to sign in with this server's OpenID provider:
        its issuer, the CLI's (public) client id, the scopes to ask for, and the
        audience the API expects of access tokens. Not secret: no token needed."""
        oidc = app.oidc
        if oidc is None or not oidc.cli_client_id:
            raise NotFound(
                "this server does not offer signoff login (SIGNOFF_OIDC_ISSUER and "
                "SIGNOFF_OIDC_CLI_CLIENT_ID are not set): use an API token (SIGNOFF_TOKEN)"
            )
        return {
            "issuer": oidc.issuer,
            "client_id": oidc.cli_client_id,
            "scopes": oidc.cli_scopes,
            "audience": oidc.audience,
        }

    findings_at: list[float] = []  # when the findings gauge was last computed

    @api.get("/metrics", tags=["operations"])
    def metrics() -> Response:
        due, lag = views.due_queue(svc)
        observer.due_depth.set(due)
        observer.worker_lag.set(lag)
        if not findings_at or time.monotonic() - findings_at[0] > FINDINGS_EVERY:
            # a report over 30 days costs what the window holds: once in a while, not at
            # every scrape
            now = svc.clock.now()
            found = analytics.whole_report(svc, now - timedelta(days=30), now).findings
            for kind in analytics.FINDING_KINDS:
                observer.findings.labels(kind).set(sum(1 for f in found if f.kind == kind))
            findings_at[:] = [time.monotonic()]
        return Response(observer.render(), media_type="text/plain; version=0.0.4")

    return api
