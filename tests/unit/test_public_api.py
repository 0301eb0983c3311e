"""The names ``signoff`` exports are a promise to SDK users: changing them is a
deliberate act, made here too."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import inspect

import signoff

EXPECTED = {
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
}


def test_exported_names_are_exactly_the_public_surface() -> None:
    assert set(signoff.__all__) == EXPECTED
    for name in signoff.__all__:
        assert getattr(signoff, name) is not None, name
    public = {n for n in vars(signoff) if not n.startswith("_")} - {"annotations"}
    # Nothing public leaks besides the exports (submodules are not names of the API).
    leaked = {n for n in public if n not in EXPECTED and not _is_submodule(n)}
    assert leaked == set()


def _is_submodule(name: str) -> bool:
    return name in {
        "domain",
        "adapters",
        "services",
        "entrypoints",
        "config",
        "bootstrap",
        "commands",
        "wording",
        "sdk",
    }


def test_every_exported_error_is_a_signoff_error() -> None:
    for name in signoff.__all__:
        value = getattr(signoff, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, signoff.SignoffError), name


def test_the_digest_and_the_webhook_check_work_from_the_top_level() -> None:
    action = signoff.Action("deploy", "prod/api", {"ref": "v1"})
    assert action.digest == signoff.Action("deploy", "prod/api", {"ref": "v1"}).digest
    assert action.digest != signoff.Action("deploy", "prod/api", {"ref": "v2"}).digest
    secret, body, ts = "s3cret", b'{"event": "request.approved"}', "1700000000"
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {"Signoff-Timestamp": ts, "Signoff-Signature": "v1=" + mac}
    assert signoff.verify_webhook_signature(secret, headers, body, now=1700000001)
    headers["Signoff-Signature"] = "v1=" + "0" * 64
    assert not signoff.verify_webhook_signature(secret, headers, body, now=1700000001)


def _shape(fn: object) -> str:
    """A signature without its annotations: what a caller writes."""
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    bare = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=bare, return_annotation=inspect.Signature.empty))


CLIENT_METHODS = {
    "__init__": "(self, url=None, token=None, *, timeout=30.0, user_agent=None, transport=None)",
    "approve": "(self, request_id, comment='')",
    "cancel": "(self, request_id, comment='')",
    "deny": "(self, request_id, comment='')",
    "evaluate": "(self, type, target, params=None, *, as_user=None, ticket=None, links=(), "
    "labels=None, risk=None, diff=None)",
    "execute": "(self, request_id)",
    "executions": "(self, request_id)",
    "get": "(self, request_id)",
    "inbox": "(self, limit=200)",
    "jwks": "(self)",
    "list": "(self, *, status=None, requester=None, awaiting=None, cursor=None, limit=50)",
    "me": "(self)",
    "redeem": "(self, token, type, target, params=None)",
    "replay_policies": "(self, files, since='30d', until=None)",
    "report": "(self, since='30d', until=None, policy=None)",
    "request": "(self, type, target, params=None, *, reason='', ticket=None, links=(), "
    "labels=None, risk=None, diff=None, redeem=False)",
    "revoke_grant": "(self, grant_id, comment='')",
    "verify_grant": "(self, token, type, target, params=None, *, jwks=None)",
    "wait": "(self, request, *, timeout=None, on_update=None)",
}


def _methods(cls: type) -> dict[str, str]:
    return {
        name: _shape(fn)
        for name, fn in vars(cls).items()
        if callable(fn) and (name == "__init__" or not name.startswith("_"))
    }


def test_the_clients_calls_are_pinned_and_the_same_sync_and_async() -> None:
    assert _methods(signoff.Client) == {**CLIENT_METHODS, "close": "(self)"}
    assert _methods(signoff.AsyncClient) == {**CLIENT_METHODS, "aclose": "(self)"}
    for name in CLIENT_METHODS.keys() - {"__init__"}:
        assert inspect.iscoroutinefunction(getattr(signoff.AsyncClient, name)), name
        assert not inspect.iscoroutinefunction(getattr(signoff.Client, name)), name
    assert _shape(signoff.require_approval) == (
        "(type, target, params=None, *, reason='', ticket=None, labels=None, risk=None, "
        "timeout=None, client=None)"
    )


def test_the_returned_values_keep_their_fields() -> None:
    fields = {f.name for f in dataclasses.fields(signoff.Request)}
    assert fields >= {
        "id", "status", "requester", "action", "action_digest", "reason", "outcome", "grant",
        "created_at", "decided_at", "deadline_at", "still_needed", "awaiting", "votes",
        "stages", "raw",
    }  # fmt: skip
    assert [f.name for f in dataclasses.fields(signoff.Grant)] == [
        "id", "token", "expires_at", "uses_total", "uses_left", "revoked",
    ]  # fmt: skip
    for error in (signoff.Denied, signoff.TimedOut, signoff.Cancelled):
        assert issubclass(error, signoff.NotApproved)
        assert error("x", None).request is None
