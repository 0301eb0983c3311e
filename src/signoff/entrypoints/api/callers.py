"""Who calls: the ``Authorization: Bearer`` API token, as a FastAPI dependency; and
the OpenAPI description of the errors every route may answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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


# The API's security scheme in the OpenAPI document (a header parameter, as before, cost
# FastAPI more per request than the rest of the call's dependencies together).
BEARER = HTTPBearer(
    scheme_name="apiToken",
    auto_error=False,
    description="An API token: `signoff token create`, or the one the first start prints.",
)


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
) -> User:
    if credentials is None:
        raise Unauthenticated("send 'Authorization: Bearer <token>'")
    app: App = request.app.state.signoff
    token = credentials.credentials.strip()
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
