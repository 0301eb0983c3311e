"""RFC 9457 problem+json for every error, mapped in one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from signoff.domain.errors import PolicyError, SignoffError

log = logging.getLogger("signoff.api")
TYPE_BASE = "https://signoff.dev/problems/"
MEDIA_TYPE = "application/problem+json"


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": TYPE_BASE + code, "title": title, "status": status, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


MACHINE_PATHS = (
    "/v1/",
    "/.well-known/",
    "/slack/",
    "/integrations/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi",
)


def for_people(request: Request) -> bool:
    """A browser asking for a page: errors are pages for people there, never JSON."""
    path = request.url.path
    return not path.startswith(MACHINE_PATHS) and "text/html" in request.headers.get("accept", "")


def people_page(status: int, title: str, detail: str) -> Response:
    from signoff.entrypoints.web.pages import page

    return page("message.html", title, status, lines=[detail], back="/")


def install(app: FastAPI) -> None:
    @app.exception_handler(SignoffError)
    async def signoff_error(request: Request, exc: SignoffError) -> Response:
        if for_people(request):
            return people_page(exc.status, exc.title, exc.detail)
        extra = dict(exc.extra)
        if isinstance(exc, PolicyError):
            extra["problems"] = [
                {"file": p.file, "line": p.line, "column": p.column, "message": p.message}
                for p in exc.problems
            ]
        return problem(exc.status, exc.code, exc.title, exc.detail, **_jsonable(extra))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            errors.append({"field": ".".join(loc), "message": str(err.get("msg", ""))})
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        where = first["field"].split(".", 1)  # body.reason -> reason, query.cursor -> cursor
        if for_people(request):
            return people_page(
                422, "This form could not be read", f"{where[-1]}: {first['message']}"
            )
        return problem(
            422,
            "validation-error",
            "Validation error",
            f"{first['field']}: {first['message']}" if first["field"] else first["message"],
            field=where[-1],
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if for_people(request):
            said = {404: "There is no page here.", 405: "This page cannot be used that way."}
            return people_page(
                exc.status_code, str(exc.detail), said.get(exc.status_code, str(exc.detail))
            )
        codes = {
            400: "invalid-body",
            401: "unauthenticated",
            404: "not-found",
            405: "method-not-allowed",
            413: "too-large",
        }
        detail = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:
            detail = "the request body could not be read: it must be UTF-8 JSON"
        return problem(
            exc.status_code,
            codes.get(exc.status_code, f"http-{exc.status_code}"),
            "Bad request" if exc.status_code == 400 else str(exc.detail),
            detail,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        if for_people(request):
            return people_page(
                500,
                "Something went wrong",
                "Signoff could not show this page; the error has been logged. Nothing you "
                "sent was lost: try again, or tell an admin.",
            )
        return problem(
            500,
            "internal-error",
            "Internal error",
            "the server could not complete this request; it has been logged",
        )
