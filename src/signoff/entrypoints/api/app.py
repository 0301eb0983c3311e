"""The HTTP application: the API (v1) routers, the pages behind message links, Slack's
interactivity, the API's documentation page (with its assets, nothing from a CDN),
problem+json errors and the body size limit, over one ``App``."""

from __future__ import annotations

from fastapi import FastAPI

from signoff.bootstrap import App
from signoff.entrypoints.api import (
    analytics,
    docs,
    grants,
    operations,
    policies,
    problems,
    requests,
)
from signoff.entrypoints.api.limits import BodySizeLimit


def create_app(app: App) -> FastAPI:
    api = FastAPI(
        title="Signoff",
        version="1",
        description="Just-in-time action approval: ask at the moment of need, grant exactly "
        "the approved action, keep a tamper-evident record.",
        # FastAPI's own /docs and /redoc load their scripts from CDNs: docs.install
        # serves a /docs that loads them from this server, and there is no /redoc.
        docs_url=None,
        redoc_url=None,
    )
    api.state.signoff = app
    problems.install(api)
    # Routes are matched in the order they are included: the API's hot paths first
    # (asking, voting, redeeming), before the pages' many routes.
    api.include_router(requests.router(app))
    api.include_router(grants.router(app))
    api.include_router(operations.router(app))
    api.include_router(policies.router(app))
    api.include_router(analytics.router(app))
    from signoff.entrypoints.web import flow, pages, profile, requesting, reviews
    from signoff.entrypoints.web.admin import router as admin_router
    from signoff.entrypoints.web.links import router as links_router

    api.include_router(pages.router(app))
    api.include_router(reviews.router(app))
    api.include_router(requesting.router(app))
    api.include_router(flow.router(app))
    api.include_router(admin_router(app))
    api.include_router(profile.router(app))
    api.include_router(links_router(app))
    if app.settings.slack_signing_secret:
        from signoff.entrypoints.web.slack import router as slack_router

        api.include_router(slack_router(app))
    if app.settings.github_app_id:
        from signoff.entrypoints.api.github import router as github_router

        api.include_router(github_router(app))
    docs.install(api)
    pages.mount_assets(api)
    api.add_middleware(BodySizeLimit, max_bytes=app.settings.max_body_bytes)
    return api
