"""`signoff login` against a real OpenID provider on loopback (oidc-provider on Node,
tests/oidc_provider) and a live `signoff serve`, the CLI as a subprocess: the device
grant confirmed in headless Chromium, the tokens kept 0600 in the config folder and never
printed, `whoami` and a request made with them, a refresh that picks up a group the
provider took away, a 401 answered by one renewal, `logout` revoking the refresh token;
and the loopback redirect (PKCE) when the provider has no device grant."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from signoff.bootstrap import build

from ..conftest import (
    OIDC_CLIENT_ID,
    OIDC_CLIENT_SECRET,
    LiveServer,
    make_settings,
    oidc_provider,
)
from .conftest import SIGNOFF, base_env, start_server, stop

CLI_CLIENT = "signoff-cli"
PAT = {"email": "pat@example.com", "preferred_username": "pat", "name": "Pat P."}


def serve(tmp_path: Path, issuer: str) -> tuple[subprocess.Popen[bytes], str]:
    env = base_env(f"sqlite:///{tmp_path / 'signoff.db'}", tmp_path)
    env.update(
        SIGNOFF_OIDC_ISSUER=issuer,
        SIGNOFF_OIDC_CLIENT_ID=OIDC_CLIENT_ID,
        SIGNOFF_OIDC_CLIENT_SECRET=OIDC_CLIENT_SECRET,
        SIGNOFF_OIDC_CLI_CLIENT_ID=CLI_CLIENT,
        SIGNOFF_OIDC_CLI_SCOPES="openid email profile offline_access signoff",
        SIGNOFF_OIDC_GROUP_MAP=json.dumps({"idp-dba": "dba", "idp-security": "security"}),
    )
    return start_server(env, tmp_path, "serve")


class Person:
    """The CLI of one person: their own HOME and config folder."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.config = tmp_path / "config"
        self.env = {
            **base_env("sqlite://", tmp_path),
            "HOME": str(tmp_path / "home"),
            "XDG_CONFIG_HOME": str(self.config),
            "SIGNOFF_URL": url,
        }
        self.url = url
        self.file = self.config / "signoff" / "login.json"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SIGNOFF, *args], env=self.env, capture_output=True, text=True, timeout=90
        )

    def start_login(self) -> tuple[subprocess.Popen[str], list[str]]:
        """`signoff login --no-browser` started; the lines it has said until it waits."""
        proc = subprocess.Popen(
            [*SIGNOFF, "login", "--no-browser"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        said: list[str] = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("Waiting") for line in said):
            line = proc.stderr.readline()
            if not line:
                proc.wait(10)
                raise AssertionError(f"login ended early: {said}")
            said.append(line.rstrip("\n"))
            assert time.monotonic() < deadline
        return proc, said

    def stored(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.file.read_text())
        return found


def provider_login(page: Page, login: str) -> None:
    """The provider's dev login form, then its consent page."""
    page.fill("[name=login]", login)
    page.fill("[name=password]", "any")
    page.click("button[type=submit]")
    page.click("button:has-text('Continue')")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("cli-login")
    accounts = tmp / "accounts.json"
    accounts.write_text(json.dumps({"pat": {**PAT, "groups": ["idp-dba", "idp-other"]}}))
    with oidc_provider([], CLI_CLIENT_ID=CLI_CLIENT, ACCOUNTS_FILE=str(accounts)) as issuer:
        proc, url = serve(tmp, issuer)
        try:
            yield {"url": url, "issuer": issuer, "accounts": accounts}
        finally:
            stop([proc])


def test_login_with_the_device_grant_then_refresh_and_logout(
    browser: Browser, site, tmp_path: Path
) -> None:
    me = Person(tmp_path, site["url"])
    before = me.run("whoami")
    assert before.returncode == 2
    assert before.stderr.startswith("error: not logged in: run signoff login")

    proc, said = me.start_login()
    assert any(re.search(r"enter the code [A-Z]{4}-[A-Z]{4}", line) for line in said), said
    complete = re.search(r"\(or open (\S+)\)", "\n".join(said))
    assert complete is not None, said
    page = browser.new_context().new_page()
    page.goto(complete.group(1))
    page.click("button:has-text('Continue')")  # the code shown is the CLI's
    provider_login(page, "pat")
    expect(page.locator("h1")).to_have_text("Sign-in Success", timeout=15_000)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == f"Logged in to {site['url']} as pat (groups: dba)\n"

    # kept 0600 in a 0700 folder of the person's config; no token was ever printed
    assert stat.S_IMODE(me.file.stat().st_mode) == 0o600
    assert stat.S_IMODE(me.file.parent.stat().st_mode) == 0o700
    first = me.stored()
    assert first["url"] == site["url"] and first["issuer"] == site["issuer"]
    assert first["access_token"].count(".") == 2 and first["refresh_token"]
    for secret in (first["access_token"], first["refresh_token"]):
        assert secret not in out + err + "\n".join(said)

    who = me.run("whoami")
    assert who.returncode == 0, who.stderr
    lines = who.stdout.splitlines()
    assert lines[:2] == ["pat", "groups: dba"]
    assert lines[2].startswith(f"signed in: signoff login with {site['issuer']} (until ")

    asked = me.run("request", "--type", "deploy", "--target", "staging/api", "--json")
    made = json.loads(asked.stdout)  # no policy matches: denied (exit 1), but asked by pat
    assert (asked.returncode, made["requester"], made["status"]) == (1, "pat", "denied")

    # the provider takes pat out of idp-dba; at the next refresh the group is gone
    site["accounts"].write_text(json.dumps({"pat": {**PAT, "groups": ["idp-other"]}}))
    me.file.write_text(json.dumps({**first, "expires_at": time.time() - 1}))  # mode kept
    who = me.run("whoami")
    assert who.returncode == 0, who.stderr
    assert who.stdout.splitlines()[:2] == ["pat", "groups: none"]
    renewed = me.stored()
    assert renewed["access_token"] != first["access_token"]
    assert renewed["refresh_token"] != first["refresh_token"]  # rotated by the provider
    assert renewed["expires_at"] > time.time()
    assert stat.S_IMODE(me.file.stat().st_mode) == 0o600

    # an access token the server refuses (401) is renewed once, and the call made again
    site["accounts"].write_text(json.dumps({"pat": {**PAT, "groups": ["idp-security"]}}))
    me.file.write_text(json.dumps({**renewed, "access_token": "a.b.c"}))
    who = me.run("whoami")
    assert who.returncode == 0, who.stderr
    assert who.stdout.splitlines()[:2] == ["pat", "groups: security"]
    last = me.stored()

    # a file others may read is refused, as ssh refuses a key
    os.chmod(me.file, 0o644)
    unsafe = me.run("whoami")
    assert unsafe.returncode == 2 and "may be read by others" in unsafe.stderr
    os.chmod(me.file, 0o600)

    bye = me.run("logout")
    assert bye.returncode == 0, bye.stderr
    assert bye.stdout == f"Logged out of {site['url']}.\n"
    assert not me.file.exists()
    # the refresh token was revoked at the provider
    meta = httpx.get(f"{site['issuer']}/.well-known/openid-configuration").json()
    spent = httpx.post(
        meta["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": last["refresh_token"],
            "client_id": CLI_CLIENT,
        },
    )
    assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"
    after = me.run("whoami")
    assert after.returncode == 2
    assert after.stderr.startswith("error: not logged in: run signoff login")
    again = me.run("logout")
    assert (again.returncode, again.stdout) == (0, "Not logged in.\n")


def test_a_login_that_can_no_longer_be_renewed_says_to_log_in_again(site, tmp_path) -> None:
    me = Person(tmp_path, site["url"])
    meta = httpx.get(f"{site['issuer']}/.well-known/openid-configuration").json()
    me.file.parent.mkdir(mode=0o700, parents=True)
    fd = os.open(me.file, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(
            {
                "url": site["url"],
                "issuer": site["issuer"],
                "client_id": CLI_CLIENT,
                "token_endpoint": meta["token_endpoint"],
                "revocation_endpoint": "",
                "access_token": "a.b.c",
                "refresh_token": "not-a-refresh-token",
                "expires_at": time.time() - 10,
            },
            f,
        )
    who = me.run("whoami")
    assert who.returncode == 2
    assert who.stderr == (
        f"error: your login to {site['url']} has ended (the provider said invalid_grant): "
        "run signoff login\n"
    )


def test_a_server_without_cli_login_says_what_to_do(tmp_path: Path) -> None:
    # the server in this process (no `signoff serve` to start): only the CLI is a process
    app = build(make_settings(f"sqlite:///{tmp_path / 'signoff.db'}", tmp_path))
    server = LiveServer(app).start()
    try:
        me = Person(tmp_path, server.url)
        said = me.run("login", "--no-browser")
        assert said.returncode == 2
        assert "does not offer signoff login" in said.stderr
        assert len(said.stderr.splitlines()) == 1
    finally:
        server.stop()
        app.close()


def test_login_through_the_loopback_redirect_when_there_is_no_device_grant(
    browser: Browser, tmp_path: Path
) -> None:
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps({"pat": {**PAT, "groups": ["idp-security"]}}))
    with oidc_provider(
        [], CLI_CLIENT_ID=CLI_CLIENT, ACCOUNTS_FILE=str(accounts), DEVICE_FLOW="0"
    ) as issuer:
        meta = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
        assert "device_authorization_endpoint" not in meta
        proc, url = serve(tmp_path, issuer)
        try:
            me = Person(tmp_path, url)
            login, said = me.start_login()
            address = re.search(r"To sign in, open (\S+)", "\n".join(said))
            assert address is not None, said
            assert "code_challenge_method=S256" in address.group(1)
            assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in address.group(1)
            page = browser.new_context().new_page()
            page.goto(address.group(1))
            provider_login(page, "pat")
            expect(page.locator("p")).to_have_text(
                "Signed in. You can close this tab and go back to the terminal.",
                timeout=15_000,
            )
            out, err = login.communicate(timeout=60)
            assert login.returncode == 0, err
            assert out == f"Logged in to {url} as pat (groups: security)\n"
            assert stat.S_IMODE(me.file.stat().st_mode) == 0o600
            assert me.stored()["access_token"] not in out + err
            # the same listener does not take a second answer
            port = re.search(r"127\.0\.0\.1%3A(\d+)", address.group(1))
            assert port is not None
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{port.group(1)}/callback", timeout=2)
        finally:
            stop([proc])
