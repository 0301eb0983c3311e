"""The API's documentation page: Swagger UI at ``/docs``, with its script, style sheet
and icon served from the installed ``fastapi-offline`` package under ``/static/docs/``,
so the page works on a machine without internet and loads nothing from any other host
(FastAPI's own loads them from a CDN).

There is no ReDoc page: ReDoc's script (the package ships it too) still loads its logo
from Redocly's CDN, with no option to turn that off."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/static/docs"


def install(api: FastAPI) -> None:
    """Add the page and its assets to ``api`` (made with ``docs_url=None``)."""
    openapi_url = api.openapi_url or "/openapi.json"
    api.mount(ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    @api.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{api.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )
