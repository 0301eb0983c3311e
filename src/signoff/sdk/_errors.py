"""The SDK's own errors, beside the server's tree (``signoff.domain.errors``).

SignoffError
├── ... every error of the server, raised from its problem+json answer
├── Unreachable         the server could not be reached, or the connection broke
├── ServerError         an answer the SDK cannot read as one of ours (a 5xx, a proxy)
└── NotApproved         a request that ended without a grant to use (``.request``)
    ├── Denied          denied by a person, by policy, or revoked
    ├── TimedOut        nobody decided in time (the server's deadline, or ``wait``'s)
    └── Cancelled       cancelled by its requester or an admin
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from signoff.domain.errors import SignoffError

if TYPE_CHECKING:
    from signoff.sdk.models import Request


class Unreachable(SignoffError):
    """The server could not be reached, or the connection broke before an answer."""

    code = "unreachable"
    status = 0
    title = "Server unreachable"


class ServerError(SignoffError):
    """An answer that is not a problem the SDK knows: a 5xx, or a proxy's error page."""

    code = "server-error"
    status = 500
    title = "Server error"


class NotApproved(SignoffError):
    """A request that ended without a grant; ``request`` is it as last seen (or None)."""

    code = "not-approved"
    status = 403
    title = "Not approved"

    def __init__(self, detail: str, request: Request | None = None) -> None:
        super().__init__(detail)
        self.request = request


class Denied(NotApproved):
    """Denied by a person (``request.outcome`` says who and why), by policy, or the
    grant was revoked before it was used."""

    code = "denied"
    title = "Denied"


class TimedOut(NotApproved):
    """Nobody decided in time: the server's deadline passed, or the caller's own
    ``timeout`` (``wait`` leaves the request pending; ``require_approval`` cancels it)."""

    code = "timed-out"
    title = "Timed out"


class Cancelled(NotApproved):
    """Cancelled by its requester or an admin."""

    code = "cancelled"
    title = "Cancelled"
