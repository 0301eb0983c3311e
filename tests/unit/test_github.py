"""GitHub deployments without a network: what a waiting run is told, the webhook's
signature, the App's JWT and key, and GitHub logins in the users file."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from signoff.adapters.directory_file import load_directory
from signoff.adapters.github import app_jwt, load_private_key, review_of, signature_ok
from signoff.domain.errors import InvalidInput, PolicyError
from signoff.services.messages import Message, RequestSummary, VoteSummary

URL = "https://signoff.example"


def decided(status: str, votes: tuple[VoteSummary, ...] = (), outcome: str | None = None):
    return Message(
        event=f"request.{status}",
        audit_seq=7,
        status=status,
        actor="x",
        request=RequestSummary(
            id="r-1",
            requester="github",
            type="deploy",
            target="github/acme/api/production",
            params={"ref": "refs/heads/main", "sha": "b" * 40},
            reason="",
            ticket=None,
            policy="github-deploy",
            votes=votes,
            outcome=outcome,
        ),
    )


def test_the_run_is_told_who_decided_and_why_with_the_page() -> None:
    one = decided("approved", (VoteSummary("alice", "approved", "looks good", 1),))
    assert review_of(one, URL) == (
        "approved",
        "Approved in Signoff by alice: looks good\n\nhttps://signoff.example/requests/r-1",
    )
    two = decided(
        "approved",
        (
            VoteSummary("alice", "approved", "", 1),
            VoteSummary("bob", "approved", "ship it", 2),
        ),
    )
    state, comment = review_of(two, URL)
    assert comment.startswith("Approved in Signoff by alice, bob\nbob: ship it\n\n")
    policy = decided("approved", outcome="approved by policy")
    assert review_of(policy, URL)[1].startswith("Approved in Signoff by policy 'github-deploy'")
    denied = decided(
        "denied", (VoteSummary("bob", "denied", "too broad", 1),), "denied by bob: too broad"
    )
    assert review_of(denied, URL)[0] == "rejected"
    assert review_of(denied, URL)[1].startswith("Rejected in Signoff: denied by bob: too broad")
    for status, outcome in (("timed_out", "timed out"), ("cancelled", "cancelled by carol")):
        state, comment = review_of(decided(status, outcome=outcome), URL)
        assert state == "rejected" and comment.startswith(f"Rejected in Signoff: {outcome}")


def test_a_long_comment_is_cut_but_keeps_the_page() -> None:
    long = decided("approved", (VoteSummary("alice", "approved", "x" * 5000, 1),))
    _, comment = review_of(long, URL)
    assert len(comment) <= 1000
    assert comment.endswith("\n\nhttps://signoff.example/requests/r-1")


def test_the_signature_is_githubs_hmac_of_the_raw_body() -> None:
    body = b'{"action":"requested"}'
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature_ok("s3cret", body, good)
    assert not signature_ok("s3cret", body + b" ", good)
    assert not signature_ok("other", body, good)
    assert not signature_ok("s3cret", body, None)
    assert not signature_ok("s3cret", body, good.replace("sha256=", "sha1="))
    assert not signature_ok("", body, "sha256=" + hmac.new(b"", body, hashlib.sha256).hexdigest())


def test_the_apps_jwt_is_rs256_issued_in_the_past_for_under_ten_minutes() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = time.time()
    token = app_jwt("123", key, now)
    claims = jwt.decode(token, key.public_key(), algorithms=["RS256"])
    assert claims == {"iss": "123", "iat": int(now) - 60, "exp": int(now) + 540}


def test_a_wrong_key_is_named_without_its_text(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(InvalidInput, match="not an RSA key") as caught:
        load_private_key(None, pem)
    assert pem.splitlines()[1] not in str(caught.value)
    with pytest.raises(InvalidInput, match="not a PEM private key"):
        load_private_key(None, "-----BEGIN NOTHING-----")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kept = tmp_path / "app.pem"
    kept.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # as GitHub hands it out
            serialization.NoEncryption(),
        )
    )
    assert load_private_key(kept, "").private_numbers() == rsa_key.private_numbers()
    with pytest.raises(InvalidInput, match="cannot read it"):
        load_private_key(tmp_path / "missing.pem", "")
    with pytest.raises(InvalidInput, match="SIGNOFF_GITHUB_PRIVATE_KEY_FILE"):
        load_private_key(None, "")


def test_github_logins_in_the_users_file(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    users.write_text("users:\n  - {name: dave, github: Dave-GH}\n  - {name: erin}\n")
    directory = load_directory(users)
    found = directory.by_github("dave-gh")
    assert found is not None and found.name == "dave"
    assert directory.by_github("erin") is None
    users.write_text(
        "users:\n  - {name: dave, github: dave-gh}\n  - {name: erin, github: DAVE-GH}\n"
    )
    with pytest.raises(PolicyError) as caught:
        load_directory(users)
    assert "GitHub login 'DAVE-GH' is given twice" in str(caught.value)
    assert ":3:" in str(caught.value)
