"""Single sign-on (OIDC) against a real OpenID provider on loopback (oidc-provider on
Node, tests/oidc_provider): sign in in a real headless Chromium through the provider's
login and consent pages, a person provisioned just in time with their mapped groups
voting on a stage of that group, a directory person's groups combined with theirs; and
what is refused: an unknown or replayed state, a state from another browser, an open
redirect, an ID token for another audience or another sign-in (nonce)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import Browser, Page, expect

from signoff.adapters.oidc import OidcProvider
from signoff.bootstrap import build
from signoff.domain.errors import Unauthenticated
from signoff.services import sessions

from ..conftest import (
    FIXTURES,
    OIDC_CLIENT_ID,
    OIDC_CLIENT_SECRET,
    TEST_DOMAIN,
    LiveServer,
    bound_socket,
    make_settings,
    oidc_provider,
)
from .test_browser import ask


@pytest.fixture(scope="module")
def site(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    sock = bound_socket()
    url = f"http://app.{TEST_DOMAIN}:{sock.getsockname()[1]}"
    with oidc_provider([f"{url}/signin/oidc/callback"]) as issuer:
        settings = make_settings(
            module_database_url,
            tmp_path_factory.mktemp("sso"),
            public_url=url,
            policies_dir=FIXTURES / "staged",
            oidc_issuer=issuer,
            oidc_client_id=OIDC_CLIENT_ID,
            oidc_client_secret=OIDC_CLIENT_SECRET,
            oidc_provider_name="Test IdP",
            oidc_group_map={"idp-dba": "dba", "idp-security": "security"},
        )
        app = build(settings)
        server = LiveServer(app, sock).start()
        try:
            yield {"app": app, "url": url, "issuer": issuer, "port": server.port}
        finally:
            server.stop()
            app.close()


def sso(browser: Browser, url: str, login: str, start: str = "/signin") -> Page:
    """Sign in through the provider's dev login and consent pages."""
    page = browser.new_context().new_page()
    page.goto(url + start)
    page.click("a.sso")
    page.fill("[name=login]", login)
    page.fill("[name=password]", "any")
    page.click("button[type=submit]")
    page.click("button:has-text('Continue')")
    expect(page.locator(".who")).to_have_text(login, timeout=15_000)
    return page


def test_sign_in_with_the_provider_and_vote_with_a_mapped_group(browser: Browser, site) -> None:
    app, url = site["app"], site["url"]
    shown = browser.new_context().new_page()
    shown.goto(f"{url}/signin")
    expect(shown.locator("a.sso")).to_have_text("Sign in with Test IdP")

    # olga is not in users.yaml: she is provisioned, in dba (idp-dba; idp-unmapped ignored)
    olga = sso(browser, url, "olga")
    with app.services.uow(write=False) as uow:
        found = uow.identities.by_subject(site["issuer"], "sub-olga")
    assert found is not None
    assert (found.user, found.email, found.groups) == ("olga", "olga@example.com", {"dba"})

    # bob is in users.yaml (dba): idp-security adds security
    bob = sso(browser, url, "bob")

    # a request asked now names her among the dba stage's approvers: she approves it
    rid = ask(app, "UPDATE plans SET tier = 'pro' WHERE id = 7")
    olga.goto(f"{url}/requests/{rid}")
    olga.fill("#comment", "fine by me")
    olga.click("button.approve")
    expect(olga.locator(".flash")).to_have_text("Your approval was recorded.")
    expect(olga.locator("#state")).to_contain_text("2 of 2: security")

    # bob's session: his users.yaml groups (dba) and his mapped ones (security)
    cookie = next(c for c in bob.context.cookies() if c["name"] == "signoff_session")
    me = sessions.session_for(app.services, cookie["value"])
    assert (me.user.name, me.user.groups, me.user.email) == (
        "bob",
        {"dba", "security"},
        "bob@example.com",
    )
    bob.goto(f"{url}/requests/{rid}")
    expect(bob.locator(".why-not")).to_have_text("You are not an approver of stage 2 (security).")


def test_the_next_page_is_kept_and_an_open_redirect_is_refused(browser: Browser, site) -> None:
    url = site["url"]
    page = sso(browser, url, "olga", start="/signin?next=/mine")
    assert urlsplit(page.url).path == "/mine"
    evil = sso(browser, url, "olga", start="/signin?next=//evil.example/x")
    assert evil.url.startswith(url + "/")
    assert urlsplit(evil.url).path == "/"


def start(client: httpx.Client, next_path: str = "/") -> str:
    """Begin a sign-in with httpx: the state the provider is sent."""
    answer = client.get("/signin/oidc", params={"next": next_path})
    assert answer.status_code == 303
    sent = parse_qs(urlsplit(answer.headers["location"]).query)
    assert sent["code_challenge_method"] == ["S256"] and sent["nonce"] and sent["code_challenge"]
    return sent["state"][0]


def test_a_wrong_or_replayed_state_is_refused(site) -> None:
    base = f"http://127.0.0.1:{site['port']}"
    with httpx.Client(base_url=base, timeout=30) as client:
        refused = client.get("/signin/oidc/callback", params={"state": "made-up", "code": "x"})
        assert refused.status_code == 401
        assert "text/html" in refused.headers["content-type"]
        assert "not one Signoff started" in refused.text  # no cookie of a sign-in here

        state = start(client)
        kept = client.cookies["signoff_oidc"]
        made_up = client.get("/signin/oidc/callback", params={"state": "made-up", "code": "x"})
        assert made_up.status_code == 401 and "unknown or was already used" in made_up.text
        # a wrong code: the provider refuses the exchange, and the state is spent
        first = client.get(
            "/signin/oidc/callback",
            params={"state": state, "code": "bogus"},
            headers={"Cookie": f"signoff_oidc={kept}"},
        )
        assert first.status_code == 401 and "the provider refused" in first.text
        assert "signoff_session" not in first.cookies
        # replayed, with the same browser cookie: refused
        again = client.get(
            "/signin/oidc/callback",
            params={"state": state, "code": "bogus"},
            headers={"Cookie": f"signoff_oidc={kept}"},
        )
        assert again.status_code == 401 and "already used" in again.text

        # a state started by another browser (login CSRF) is refused too
        state = start(client)
    with httpx.Client(base_url=base, timeout=30) as other:
        stolen = other.get("/signin/oidc/callback", params={"state": state, "code": "x"})
        assert stolen.status_code == 401
        assert "another browser" in stolen.text or "not one Signoff started" in stolen.text


def test_the_open_redirect_is_not_stored(site) -> None:
    app = site["app"]
    base = f"http://127.0.0.1:{site['port']}"
    with httpx.Client(base_url=base, timeout=30) as client:
        state = start(client, "https://evil.example/")
        browser = client.cookies["signoff_oidc"]
    login = sessions.take_oidc_login(app.services, state, browser)
    assert login.next_path == "/"


class Keys:
    """Stands for the provider's JWKS client: our own key, as PyJWK."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self.key = jwt.PyJWK.from_dict(
            {**jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}
        )

    def get_signing_key_from_jwt(self, token: str) -> jwt.PyJWK:
        return self.key


def test_an_id_token_for_another_audience_or_sign_in_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    provider = OidcProvider(
        "https://idp.example", "signoff", "secret", "openid", "preferred_username", "groups"
    )
    provider._keys = Keys(key)  # type: ignore[assignment]
    provider._metadata = {"jwks_uri": "https://idp.example/jwks"}
    now = int(time.time())

    def token(**claims: Any) -> str:
        body = {
            "iss": "https://idp.example",
            "aud": "signoff",
            "sub": "s1",
            "iat": now,
            "exp": now + 300,
            "nonce": "n1",
            **claims,
        }
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})

    assert provider.verify_id_token(token(), "n1")["sub"] == "s1"
    cases = {
        "audience": token(aud="someone-else"),
        "nonce": token(nonce="n2"),
        "issuer": token(iss="https://other.example"),
        "expired": token(exp=now - 120, iat=now - 600),
        "azp": token(aud=["signoff", "other"], azp="other"),
    }
    for why, bad in cases.items():
        with pytest.raises(Unauthenticated):
            provider.verify_id_token(bad, "n1")
        assert why  # each one refused
    hs = jwt.encode({"iss": "https://idp.example"}, "k" * 32, algorithm="HS256")
    with pytest.raises(Unauthenticated, match="HS256"):
        provider.verify_id_token(hs, "n1")


def test_a_group_map_to_an_unknown_group_is_refused_at_start(tmp_path) -> None:
    from signoff.domain.errors import InvalidInput

    settings = make_settings(
        f"sqlite:///{tmp_path / 'signoff.db'}",
        tmp_path,
        oidc_issuer="https://idp.example",
        oidc_client_id="signoff",
        oidc_group_map={"idp-x": "no-such-group"},
    )
    with pytest.raises(InvalidInput, match="no-such-group"):
        build(settings)


def test_a_name_is_bound_to_one_issuer_and_subject(signoff_app) -> None:
    from signoff.domain.errors import Forbidden

    svc = signoff_app.services
    _, first = sessions.sign_in_by_oidc(
        svc, "https://idp.example", "s1", "zed", "zed@example.com", frozenset({"dba"})
    )
    assert (first.user.name, first.user.groups) == ("zed", {"dba"})
    # another subject claiming the same name is refused: never matched by name or email
    with pytest.raises(Forbidden, match="already another"):
        sessions.sign_in_by_oidc(svc, "https://idp.example", "s2", "zed", None, frozenset())
    # the first keeps the name even when the provider renames them; groups are refreshed
    _, again = sessions.sign_in_by_oidc(
        svc, "https://idp.example", "s1", "zed2", "zed@example.com", frozenset()
    )
    assert (again.user.name, again.user.groups) == ("zed", frozenset())
    # no name claim: the email is the name
    _, nina = sessions.sign_in_by_oidc(
        svc, "https://idp.example", "s3", None, "nina@example.com", frozenset()
    )
    assert nina.user.name == "nina@example.com"
