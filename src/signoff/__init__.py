"""Signoff: just-in-time action approval.

The public Python surface is what this module exports (``__all__``); everything else is
internal and may change. ``tests/unit/test_public_api.py`` guards these names.

- ``Action``: an action (type, target, params) and its digest, the value a grant binds.
- ``Status``, ``Decision``: a request's states and a vote's decisions.
- the error tree under ``SignoffError`` (drawn in ``signoff.domain.errors``).
- ``verify_webhook_signature``: check a signed webhook delivery from Signoff.
"""

from __future__ import annotations

import typing as _typing

from signoff.domain.actions import Action
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
from signoff.domain.requests import Decision, Status

if _typing.TYPE_CHECKING:
    from signoff.adapters.channels.webhook import verify_signature as verify_webhook_signature

__version__ = "0.1.0"

__all__ = [
    "Action",
    "AlreadyVoted",
    "Conflict",
    "Decision",
    "Forbidden",
    "GrantRefused",
    "InvalidInput",
    "InvalidTransition",
    "LinkRefused",
    "NotEligible",
    "NotFound",
    "PolicyError",
    "QuorumUnreachable",
    "SelfApproval",
    "SignoffError",
    "Status",
    "Unauthenticated",
    "__version__",
    "verify_webhook_signature",
]


def __getattr__(name: str) -> _typing.Any:
    # Imported on first use: the webhook module brings an HTTP client the CLI's start
    # does not need.
    if name == "verify_webhook_signature":
        from signoff.adapters.channels.webhook import verify_signature

        return verify_signature
    raise AttributeError(f"module 'signoff' has no attribute {name!r}")
