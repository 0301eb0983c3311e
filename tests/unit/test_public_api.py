"""The names ``signoff`` exports are a promise to SDK users: changing them is a
deliberate act, made here too."""

from __future__ import annotations

import hashlib
import hmac

import signoff

EXPECTED = {
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
