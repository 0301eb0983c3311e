"""Workload identity: a pipeline asks with its platform's OIDC token, issued by a real
issuer on loopback (a discovery document and a JWKS, tokens shaped like GitHub
Actions'), and every token that should not pass is refused with its reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from signoff.bootstrap import build

from ..conftest import FIXTURES, LiveServer, bound_socket, make_settings

AUDIENCE = "https://signoff.test"


class Issuer:
    """An OIDC issuer on loopback: discovery, JWKS (keys may rotate), signed tokens."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body: Any = {
                        "issuer": issuer.url,
                        "jwks_uri": f"{issuer.url}/jwks",
                        # what a sign-in provider has too (tests/integration/test_access_tokens)
                        "authorization_endpoint": f"{issuer.url}/authorize",
                        "token_endpoint": f"{issuer.url}/token",
                    }
                elif self.path == "/jwks":
                    body = {"keys": [issuer.jwk(kid) for kid in issuer.published]}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.add_key("k1")

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published.append(kid)

    def jwk(self, kid: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key())
        )
        return {**found, "kid": kid, "alg": "RS256", "use": "sig"}

    def public_pem(self, kid: str) -> bytes:
        return (
            self.keys[kid]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def token(self, kid: str = "k1", **overrides: Any) -> str:
        """A token shaped like GitHub Actions' (its documented claims)."""
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "repo:acme/api:ref:refs/heads/main",
            "repository": "acme/api",
            "repository_owner": "acme",
            "ref": "refs/heads/main",
            "ref_type": "branch",
            "workflow": "deploy",
            "actor": "octocat",
            "run_id": "42",
            "event_name": "push",
            "jti": f"j{now}",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def workload_file(tmp_path: Path, issuer: Issuer) -> Path:
    doc = {
        "issuers": [
            {
                "issuer": issuer.url,
                "audience": AUDIENCE,
                "key_refresh_cooldown_seconds": 0,
                "rules": [
                    {
                        "claims": {"repository": "acme/*", "ref": "refs/heads/main"},
                        "user": "ci:{repository}",
                        "groups": ["deployers"],
                    },
                    {"claims": {"repository": "acme/*"}, "user": "ci:{repository}"},
                ],
            }
        ]
    }
    path = tmp_path / "workload.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


@pytest.fixture
def ci(database_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, Issuer]]:
    issuer = Issuer()
    sock = bound_socket()
    settings = make_settings(
        database_url,
        tmp_path,
        policies_dir=FIXTURES / "workload",
        workload_file=workload_file(tmp_path, issuer),
    )
    app = build(settings)
    server = LiveServer(app, sock).start()
    try:
        yield server, issuer
    finally:
        server.stop()
        app.close()
        issuer.close()


DEPLOY = {"action": {"type": "deploy", "target": "prod/api", "params": {"version": "1.4.2"}}}


def call(server: LiveServer, token: str, method: str = "POST", path: str = "/v1/requests"):
    return httpx.request(
        method,
        f"{server.url}{path}",
        json=DEPLOY if method == "POST" else None,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_a_pipeline_on_main_passes_by_policy_on_its_claims(ci) -> None:
    server, issuer = ci
    made = call(server, issuer.token())
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["requester"] == "ci:acme/api"
    assert body["status"] == "approved" and body["policy"] == "main-deploys-by-policy"
    assert body["grant"]["token"]  # the pipeline holds its grant
    seen = call(server, issuer.token(), "GET", f"/v1/requests/{body['id']}")
    assert seen.status_code == 200
    me = call(server, issuer.token(), "GET", "/v1/me").json()
    assert me["name"] == "ci:acme/api" and me["groups"] == ["deployers"]
    assert me["claims"]["repository"] == "acme/api" and me["claims"]["ref"] == "refs/heads/main"


def test_a_branch_build_waits_for_a_person_and_the_cli_follows_it(ci, tmp_path: Path) -> None:
    server, issuer = ci
    token = issuer.token(ref="refs/heads/feature", sub="repo:acme/api:ref:refs/heads/feature")
    env = {
        "SIGNOFF_URL": server.url,
        "SIGNOFF_TOKEN": token,
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    waiting = subprocess.Popen(
        [sys.executable, "-m", "signoff", "request", "--type", "deploy", "--target",
         "prod/api", "--param", "version=1.4.2", "--wait", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    svc = server.app.services
    deadline = time.monotonic() + 30
    while True:
        with svc.uow(write=False) as uow:
            page = uow.requests.list(
                status="pending", requester="ci:acme/api", awaiting=None, cursor=None, limit=5
            )
        if page.items:
            break
        assert time.monotonic() < deadline, "the pipeline's request never arrived"
        time.sleep(0.1)
    [asked] = page.items
    assert asked.policy_name == "other-deploys-need-review"
    with server.client("bob") as bob:
        assert bob.post(f"/v1/requests/{asked.id}/votes", json={"decision": "approve"}).is_success
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert json.loads(out)["status"] == "approved"
    who = subprocess.run(
        [sys.executable, "-m", "signoff", "whoami"], env=env, capture_output=True, text=True
    )
    assert who.returncode == 0, who.stderr
    assert who.stdout.splitlines()[:2] == ["ci:acme/api", "groups: none"]
    assert "  ref: refs/heads/feature" in who.stdout


def refused(server: LiveServer, token: str) -> str:
    resp = call(server, token)
    assert resp.status_code == 401, resp.text
    return str(resp.json()["detail"])


def test_every_token_that_should_not_pass_is_refused_with_its_reason(ci) -> None:
    server, issuer = ci
    other = Issuer()
    try:
        assert "are not trusted" in refused(server, other.token())
    finally:
        other.close()
    assert "audience" in refused(server, issuer.token(aud="https://elsewhere.test"))
    past = int(time.time()) - 3600
    assert "expired" in refused(server, issuer.token(iat=past - 300, nbf=past - 300, exp=past))
    unsigned = jwt.encode(
        {"iss": issuer.url, "aud": AUDIENCE, "sub": "x"}, key=None, algorithm="none"
    )
    assert "'none'" in refused(server, unsigned)
    # the public key used as an HMAC secret: the classic algorithm confusion

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    good = jwt.decode(issuer.token(), options={"verify_signature": False})
    payload = b64(json.dumps(good).encode())
    mac = hmac.new(issuer.public_pem("k1"), f"{head}.{payload}".encode(), hashlib.sha256)
    assert "'HS256'" in refused(server, f"{head}.{payload}.{b64(mac.digest())}")
    head_, _, sig = issuer.token().split(".")
    forged = jwt.decode(issuer.token(), options={"verify_signature": False})
    forged["repository"] = "acme/secrets"
    tampered = f"{head_}.{b64(json.dumps(forged).encode())}.{sig}"
    assert "signature" in refused(server, tampered)
    assert "no claim rule" in refused(server, issuer.token(repository="evil/api"))
    # a key the issuer has not published yet, then published (rotation)
    issuer.add_key("k2")
    issuer.published.remove("k2")  # made, not yet published
    assert "'k2'" in refused(server, issuer.token(kid="k2"))
    issuer.published.append("k2")
    assert call(server, issuer.token(kid="k2")).status_code == 201
