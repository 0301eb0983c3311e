"""People's access tokens from the single sign-on provider (``signoff login``): the API
takes them like API tokens, as the person the provider vouches for (provisioned just in
time, groups from the token, mapped), and refuses every token that should not pass, with
its reason: another issuer, another audience, expired, a bad signature, ``alg: none``,
an HMAC made with the public key, an unknown key (until the provider publishes it)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from signoff.bootstrap import App, build

from ..conftest import LiveServer, bound_socket, make_settings
from .test_workload import Issuer

CLI = "signoff-cli"


@pytest.fixture
def site(database_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, Issuer]]:
    issuer = Issuer()
    settings = make_settings(
        database_url,
        tmp_path,
        oidc_issuer=issuer.url,
        oidc_client_id="signoff",
        oidc_client_secret="s",
        oidc_cli_client_id=CLI,
        oidc_group_map={"idp-dba": "dba", "idp-security": "security"},
    )
    app = build(settings)
    assert app.oidc is not None
    app.oidc.key_refresh_cooldown = 0  # a rotated key is fetched at once (before first use)
    server = LiveServer(app, bound_socket()).start()
    try:
        yield server, issuer
    finally:
        server.stop()
        app.close()
        issuer.close()


def access_token(issuer: Issuer, kid: str = "k1", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer.url,
        "aud": CLI,
        "sub": "sub-pat",
        "client_id": CLI,
        "preferred_username": "pat",
        "email": "pat@example.com",
        "groups": ["idp-dba", "idp-elsewhere"],
        "scope": "openid",
        "jti": f"j{now}",
        "iat": now,
        "exp": now + 300,
        **overrides,
    }
    return jwt.encode(claims, issuer.keys[kid], algorithm="RS256", headers={"kid": kid})


def call(server: LiveServer, token: str, path: str = "/v1/me") -> httpx.Response:
    return httpx.get(
        f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def refused(server: LiveServer, token: str) -> str:
    resp = call(server, token)
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert token not in resp.text
    return str(resp.json()["detail"])


def test_the_cli_learns_how_to_sign_in_without_a_token(site) -> None:
    server, issuer = site
    said = httpx.get(f"{server.url}/v1/auth/oidc", timeout=10).json()
    assert said == {
        "issuer": issuer.url,
        "client_id": CLI,
        "scopes": "openid email profile offline_access",
        "audience": CLI,
    }


def test_a_server_without_cli_login_says_so(server: LiveServer) -> None:
    resp = httpx.get(f"{server.url}/v1/auth/oidc", timeout=10)
    assert resp.status_code == 404
    assert "SIGNOFF_OIDC_CLI_CLIENT_ID" in resp.json()["detail"]


def test_an_access_token_is_the_person_with_the_tokens_groups(site) -> None:
    server, issuer = site
    app: App = server.app
    me = call(server, access_token(issuer))
    assert me.status_code == 200, me.text
    assert (me.json()["name"], me.json()["groups"]) == ("pat", ["dba"])
    # a person of users.yaml (bob: dba) gets the token's mapped groups added
    bob = call(server, access_token(issuer, sub="sub-bob", preferred_username="bob",
                                     groups=["idp-security"])).json()  # fmt: skip
    assert (bob["name"], bob["groups"]) == ("bob", ["dba", "security"])
    # a later token without the group (a refresh after the provider removed it): gone,
    # for the API and for approver lists (stored as the latest sign-in)
    later = call(server, access_token(issuer, groups=[], jti="again"))
    assert later.json()["groups"] == []
    with app.services.uow(write=False) as uow:
        stored = uow.identities.by_subject(issuer.url, "sub-pat")
    assert stored is not None and (stored.user, stored.groups) == ("pat", frozenset())
    # the name stays the subject's even when the provider renames them
    renamed = call(server, access_token(issuer, preferred_username="patricia", jti="3"))
    assert renamed.json()["name"] == "pat"
    # and the person can ask with it
    made = httpx.post(
        f"{server.url}/v1/requests",
        json={"action": {"type": "deploy", "target": "staging/api", "params": {}}},
        headers={"Authorization": f"Bearer {access_token(issuer, jti='4')}"},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    assert made.json()["requester"] == "pat"


def test_every_access_token_that_should_not_pass_is_refused_with_its_reason(site) -> None:
    server, issuer = site
    other = Issuer()
    try:
        assert "not trusted" in refused(server, access_token(other))
    finally:
        other.close()
    assert f"not {CLI!r}" in refused(server, access_token(issuer, aud="another-client"))
    past = int(time.time()) - 3600
    assert "access token has expired" in refused(
        server, access_token(issuer, iat=past - 300, exp=past)
    )
    unsigned = jwt.encode(
        {"iss": issuer.url, "aud": CLI, "sub": "x", "iat": past, "exp": past + 9999},
        key=None,
        algorithm="none",
    )
    assert "'none' are refused" in refused(server, unsigned)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head, _, sig = access_token(issuer).split(".")
    forged = jwt.decode(access_token(issuer), options={"verify_signature": False})
    forged["groups"] = ["idp-security"]
    assert "signature is not valid" in refused(
        server, f"{head}.{b64(json.dumps(forged).encode())}.{sig}"
    )
    import hashlib
    import hmac

    hs_head = b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    payload = b64(json.dumps(forged).encode())
    mac = hmac.new(issuer.public_pem("k1"), f"{hs_head}.{payload}".encode(), hashlib.sha256)
    assert "'HS256' are refused" in refused(server, f"{hs_head}.{payload}.{b64(mac.digest())}")
    # a key the provider has not published (yet): refused; once published (rotation): taken
    issuer.add_key("k2")
    issuer.published.remove("k2")
    assert "'k2'" in refused(server, access_token(issuer, kid="k2"))
    issuer.published.append("k2")
    assert call(server, access_token(issuer, kid="k2")).status_code == 200
    # an API token still works beside them
    with server.client("alice") as alice:
        assert alice.get("/v1/me").json()["name"] == "alice"
