"""Signoff: just-in-time action approval.

The public Python surface is what this module exports (``__all__``); everything else is
internal and may change. ``tests/unit/test_public_api.py`` guards these names.

- ``Action``: an action (type, target, params) and its digest, the value a grant binds.
- ``Status``, ``Decision``: a request's states and a vote's decisions.
- the error tree under ``SignoffError`` (drawn in ``signoff.domain.errors``).
- ``verify_webhook_signature``: check a signed webhook delivery from Signoff.
- the SDK (docs/sdk.md): ``Client`` and ``AsyncClient`` (the HTTP API, typed),
  ``require_approval`` (a function that runs only with an approval of its call), the
  values they return (``Request``, ``Grant``, ``Redemption``, ``Execution``,
  ``RequestPage``, ``Identity``) and their errors (``Denied``, ``TimedOut``,
  ``Cancelled`` under ``NotApproved``; ``Unreachable``, ``ServerError``).

The SDK's modules, and the domain's actions and requests, are imported at the first use of
one of their names: ``import signoff`` (which every ``signoff`` command does first) loads
no HTTP client and none of the domain's dataclasses (the CLI's start-up depends on it).
"""

from __future__ import annotations

import typing as _typing

from signoff.domain.errors import (
    AlreadyVoted,
    Conflict,
    Forbidden,
    GrantRefused,
    InvalidInput,
    InvalidTransition,
    LinkRefused,
    NotEligible,
    NotFound,
    PolicyError,
    QuorumUnreachable,
    SelfApproval,
    SignoffError,
    Unauthenticated,
)
from signoff.sdk._errors import Cancelled, Denied, NotApproved, ServerError, TimedOut, Unreachable

if _typing.TYPE_CHECKING:
    from signoff.adapters.channels.webhook import verify_signature as verify_webhook_signature
    from signoff.domain.actions import Action
    from signoff.domain.requests import Decision, Status
    from signoff.sdk.aio import AsyncClient
    from signoff.sdk.client import Client
    from signoff.sdk.decorator import require_approval
    from signoff.sdk.models import (
        Execution,
        Grant,
        Identity,
        Redemption,
        Request,
        RequestPage,
    )

__version__ = "0.1.0"

__all__ = [
    "Action",
    "AlreadyVoted",
    "AsyncClient",
    "Cancelled",
    "Client",
    "Conflict",
    "Decision",
    "Denied",
    "Execution",
    "Forbidden",
    "Grant",
    "GrantRefused",
    "Identity",
    "InvalidInput",
    "InvalidTransition",
    "LinkRefused",
    "NotApproved",
    "NotEligible",
    "NotFound",
    "PolicyError",
    "QuorumUnreachable",
    "Redemption",
    "Request",
    "RequestPage",
    "SelfApproval",
    "ServerError",
    "SignoffError",
    "Status",
    "TimedOut",
    "Unauthenticated",
    "Unreachable",
    "__version__",
    "require_approval",
    "verify_webhook_signature",
]

# name -> the module that defines it (and its name there), imported at its first use
_LAZY = {
    "Action": "signoff.domain.actions",
    "Decision": "signoff.domain.requests",
    "Status": "signoff.domain.requests",
    "verify_webhook_signature": "signoff.adapters.channels.webhook:verify_signature",
    "AsyncClient": "signoff.sdk.aio",
    "Client": "signoff.sdk.client",
    "require_approval": "signoff.sdk.decorator",
    "Execution": "signoff.sdk.models",
    "Grant": "signoff.sdk.models",
    "Identity": "signoff.sdk.models",
    "Redemption": "signoff.sdk.models",
    "Request": "signoff.sdk.models",
    "RequestPage": "signoff.sdk.models",
}


def __getattr__(name: str) -> _typing.Any:
    # Imported on first use: these modules bring an HTTP client, or dataclasses by the
    # dozen, that the CLI's start does not need.
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'signoff' has no attribute {name!r}")
    import importlib

    module, _, attribute = where.partition(":")
    found = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = found
    return found
