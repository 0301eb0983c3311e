"""Who calls: the ``Authorization: Bearer`` API token, as a FastAPI dependency; and
the OpenAPI description of the errors every route may answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request
from fastapi.concurrency import run_in_threadpool

from signoff.bootstrap import App
from signoff.domain.errors import Unauthenticated
from signoff.domain.identity import User
from signoff.services import auth, views

PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated", **PROBLEM},
    403: {"description": "Forbidden", **PROBLEM},
    404: {"description": "Not found", **PROBLEM},
    409: {"description": "Wrong state", **PROBLEM},
    422: {"description": "Invalid input", **PROBLEM},
}


async def current_user(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> User:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthenticated("send 'Authorization: Bearer <token>'")
    app: App = request.app.state.signoff
    token = authorization[7:].strip()
    cached = auth.authenticate_cached(app.services, token)
    if cached is not None:
        return cached
    return await run_in_threadpool(auth.authenticate, app.services, token)


CurrentUser = Annotated[User, Depends(current_user)]


async def request_ref(
    request: Request,
    user: Annotated[User, Depends(current_user)],
    request_id: Annotated[
        str, Path(max_length=100, description="a request id, or its first 8+ characters")
    ],
) -> str:
    """The full id of the request a path names: a whole id, or an unambiguous prefix.
    A whole id needs no database, so no trip through the thread pool either."""
    app: App = request.app.state.signoff
    if len(request_id.strip()) >= views.ID_LENGTH:
        return views.resolve_id(app.services, user, request_id)
    return await run_in_threadpool(views.resolve_id, app.services, user, request_id)


RequestRef = Annotated[str, Depends(request_ref)]
