"""``signoff login`` and ``signoff logout``: people sign the CLI in with the
organisation's OpenID provider, as they sign in to the web app.

The server says which provider and client (``GET /v1/auth/oidc``), so only its URL is
needed. With the provider's discovery document:

- the **device authorization grant** (RFC 8628) when the provider offers it: the CLI
  shows an address and a code, the person confirms it in any browser (another machine
  too), and the CLI polls the token endpoint at the interval asked (slower on
  ``slow_down``) until it is confirmed, refused or expired;
- else the **authorization code flow with PKCE** (S256) and a ``state``, redirected to a
  one-shot listener on ``127.0.0.1`` and a free port (RFC 8252, loopback redirect), the
  browser opened unless ``--no-browser``.

Both are a few form posts, written here with httpx rather than through Authlib, so
each step and each refusal reads plainly. The tokens are kept by ``credentials.py``;
the CLI sends the access token as its bearer token and renews it with the refresh token.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from signoff.entrypoints.cli.credentials import (
    DEVICE_GRANT,
    TIMEOUT,
    Login,
    LoginError,
    expires_at,
    post_form,
    provider_error,
    tokens,
)
from signoff.entrypoints.cli.output import err, say

MAX_WAIT = 900.0  # seconds a sign-in may take, at most
LOOPBACK_WAIT = 300.0


def get_json(url: str, what: str) -> dict[str, Any]:
    try:
        resp = httpx.get(url, timeout=TIMEOUT, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise LoginError(f"cannot reach {url}: {type(exc).__name__}") from None
    try:
        body = resp.json() if len(resp.content) <= 1_000_000 else None
    except ValueError:
        body = None
    if resp.status_code == 404 and what == "sign-in settings":
        detail = body.get("detail") if isinstance(body, dict) else None
        raise LoginError(str(detail or f"{url}: not found")[:300])
    if resp.status_code >= 400 or not isinstance(body, dict):
        raise LoginError(f"cannot read the {what} at {url} (HTTP {resp.status_code})")
    return body


def settings_of(url: str) -> dict[str, str]:
    """What the server says about signing in: issuer, client id, scopes."""
    found = get_json(url.rstrip("/") + "/v1/auth/oidc", "sign-in settings")
    if not all(isinstance(found.get(k), str) and found[k] for k in ("issuer", "client_id")):
        raise LoginError(f"{url} does not say how to sign in")
    return {k: str(found.get(k) or "") for k in ("issuer", "client_id", "scopes", "audience")}


def discover(issuer: str) -> dict[str, Any]:
    where = issuer.rstrip("/") + "/.well-known/openid-configuration"
    found = get_json(where, "provider's discovery document")
    if found.get("issuer") != issuer or not isinstance(found.get("token_endpoint"), str):
        raise LoginError(f"the discovery document of {issuer} is not valid")
    return found


def device_grant(meta: dict[str, Any], client_id: str, scopes: str) -> dict[str, Any]:
    """RFC 8628: ask for a code, show it, poll until the person has confirmed it."""
    resp = post_form(
        meta["device_authorization_endpoint"], {"client_id": client_id, "scope": scopes}
    )
    if resp.status_code >= 400:
        code, description = provider_error(resp)
        raise LoginError(f"the provider refused to start a sign-in: {code} {description}".strip())
    started = resp.json()
    device_code = started.get("device_code")
    user_code = started.get("user_code")
    uri = started.get("verification_uri") or started.get("verification_url")
    if not all(isinstance(v, str) and 0 < len(v) <= 2000 for v in (device_code, user_code, uri)):
        raise LoginError("the provider's answer to a device sign-in is not valid")
    complete = started.get("verification_uri_complete")
    interval = float(started.get("interval") or 5)
    expires_in = float(started.get("expires_in") or 600)
    say(f"To sign in, open {uri} and enter the code {user_code}", err)
    if isinstance(complete, str) and complete:
        say(f"(or open {complete})", err)
    say("Waiting for you to confirm...", err)
    deadline = time.monotonic() + min(expires_in, MAX_WAIT)
    while True:
        time.sleep(max(1.0, min(interval, 60.0)))
        if time.monotonic() > deadline:
            raise LoginError("the code expired before it was confirmed: run signoff login again", 3)
        resp = post_form(
            meta["token_endpoint"],
            {"grant_type": DEVICE_GRANT, "device_code": str(device_code), "client_id": client_id},
        )
        if resp.status_code < 400:
            return tokens(resp)
        code, description = provider_error(resp)
        if code == "authorization_pending":
            continue
        if code == "slow_down":
            interval += 5
            continue
        if code == "expired_token":
            raise LoginError("the code expired before it was confirmed: run signoff login again", 3)
        if code == "access_denied":
            raise LoginError("the sign-in was refused at the provider", 1)
        raise LoginError(f"the provider refused the sign-in: {code} {description}".strip())


class _Answer:
    code: str = ""
    error: str = ""


def loopback(meta: dict[str, Any], client_id: str, scopes: str, browser: bool) -> dict[str, Any]:
    """RFC 8252: the authorization code flow with PKCE (S256) and a state, answered on
    ``http://127.0.0.1:PORT/callback`` by a listener that takes one good answer."""
    if not isinstance(meta.get("authorization_endpoint"), str):
        raise LoginError(
            "the provider offers neither the device grant nor an authorization endpoint"
        )
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    answer = _Answer()
    issuer = str(meta["issuer"])

    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path != "/callback" or not secrets.compare_digest(
                query.get("state", "").encode(), state.encode()
            ):
                self.reply(404, "This is not the sign-in Signoff is waiting for.")
                return
            if query.get("iss") and query["iss"] != issuer:  # RFC 9207
                answer.error = "the answer came from another provider"
            elif query.get("error"):
                answer.error = f"the provider said {query['error'][:100]}"
            elif not query.get("code") or len(query["code"]) > 4000:
                answer.error = "the provider sent no code"
            else:
                answer.code = query["code"]
            self.reply(
                400 if answer.error else 200,
                f"Not signed in: {answer.error}." if answer.error else
                "Signed in. You can close this tab and go back to the terminal.",
            )  # fmt: skip

        def reply(self, status: int, text: str) -> None:
            body = f"<!doctype html><title>Signoff</title><p>{html.escape(text)}</p>".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # the query holds the code
            pass

    server = HTTPServer(("127.0.0.1", 0), Callback)
    server.timeout = 1.0
    try:
        redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
        url = (
            meta["authorization_endpoint"]
            + "?"
            + urlencode(
                {
                    "response_type": "code",
                    "client_id": client_id,
                    "redirect_uri": redirect_uri,
                    "scope": scopes,
                    "state": state,
                    "code_challenge": challenge.rstrip(b"=").decode(),
                    "code_challenge_method": "S256",
                }
            )
        )
        say(f"To sign in, open {url}", err)
        if browser:
            webbrowser.open(url)
        say("Waiting for the provider to send you back...", err)
        deadline = time.monotonic() + LOOPBACK_WAIT
        while not answer.code and not answer.error:
            if time.monotonic() > deadline:
                raise LoginError("nobody signed in in time: run signoff login again", 3)
            try:
                server.handle_request()
            except OSError:
                continue
    finally:
        server.server_close()
    if answer.error:
        raise LoginError(f"not signed in: {answer.error}", 1)
    resp = post_form(
        meta["token_endpoint"],
        {
            "grant_type": "authorization_code",
            "code": answer.code,
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
        },
    )
    if resp.status_code >= 400:
        code, description = provider_error(resp)
        raise LoginError(f"the provider refused the sign-in: {code} {description}".strip())
    return tokens(resp)


def sign_in(url: str, browser: bool) -> Login:
    """Sign in with the provider the server names; the login, not yet stored."""
    said = settings_of(url)
    meta = discover(said["issuer"])
    scopes = said["scopes"] or "openid"
    if isinstance(meta.get("device_authorization_endpoint"), str):
        body = device_grant(meta, said["client_id"], scopes)
    else:
        body = loopback(meta, said["client_id"], scopes, browser)
    refresh = body.get("refresh_token")
    revocation = meta.get("revocation_endpoint")
    return Login(
        url=url.rstrip("/"),
        issuer=said["issuer"],
        client_id=said["client_id"],
        token_endpoint=str(meta["token_endpoint"]),
        revocation_endpoint=revocation if isinstance(revocation, str) else "",
        access_token=str(body["access_token"]),
        refresh_token=refresh if isinstance(refresh, str) else "",
        expires_at=expires_at(body),
    )


def revoke(login: Login) -> str | None:
    """Revoke the refresh token at the provider (RFC 7009) when it has an endpoint for
    it; what went wrong, or None."""
    if not login.refresh_token or not login.revocation_endpoint:
        return None
    try:
        resp = post_form(
            login.revocation_endpoint,
            {
                "token": login.refresh_token,
                "token_type_hint": "refresh_token",
                "client_id": login.client_id,
            },
        )
    except LoginError as exc:
        return exc.message
    if resp.status_code >= 400:
        return f"the provider said {provider_error(resp)[0]}"
    return None
