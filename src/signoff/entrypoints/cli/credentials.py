"""The CLI's login (``signoff login``): the provider's tokens, kept in the user's config
folder, and renewed with the refresh token when the access token is about to expire.

The file is ``<config>/signoff/login.json`` (``typer.get_app_dir``: ``$XDG_CONFIG_HOME``
or ``~/.config`` on Linux), mode 0600 in a 0700 folder, written whole (a temporary file
renamed over it) so a reader never sees half of it. A file that others may read is
refused, as ssh refuses a key. Renewals take a lock on the folder
(``login.lock``), so two commands at once do not both spend the refresh token (providers
rotate it: the second would be refused, or the provider revoke them both).

Nothing here prints or logs a token; errors name what failed, never with a token in it.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import typer

FILE = "login.json"
LOCK = "login.lock"
MAX_FILE = 64_000  # bytes: a login file is a few kilobytes
MAX_TOKEN = 16_000  # characters of a token the provider sends
RENEW_BEFORE = 30.0  # seconds before expiry, the access token is renewed
TIMEOUT = 10.0
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class LoginError(Exception):
    """A login that cannot be used or made: one line for the CLI, and its exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Login:
    """What ``signoff login`` keeps: the server, the provider, and the tokens."""

    url: str
    issuer: str
    client_id: str
    token_endpoint: str
    revocation_endpoint: str
    access_token: str
    refresh_token: str
    expires_at: float  # epoch seconds

    def expiring(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at - RENEW_BEFORE


def folder() -> Path:
    """The user's config folder for Signoff (``$XDG_CONFIG_HOME/signoff``, else
    ``~/.config/signoff`` on Linux)."""
    return Path(typer.get_app_dir("signoff"))


def path() -> Path:
    return folder() / FILE


def load() -> Login | None:
    """The stored login, or None when there is none. LoginError when the file is
    readable by others or is not a login."""
    where = path()
    try:
        fd = os.open(where, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LoginError(f"cannot read {where}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise LoginError(
                f"{where} may be read by others (mode {stat.S_IMODE(mode):o}): "
                f"remove it and run signoff login again"
            )
        data = f.read(MAX_FILE + 1)
    try:
        doc = json.loads(data) if len(data) <= MAX_FILE else {}
        found = Login(**{k: doc[k] for k in Login.__dataclass_fields__})
        texts = [v for k, v in asdict(found).items() if k != "expires_at"]
        if not all(isinstance(v, str) for v in texts) or not isinstance(
            found.expires_at, int | float
        ):
            raise ValueError
        return found
    except (ValueError, TypeError, KeyError):
        raise LoginError(f"{where} is not a Signoff login: run signoff login again") from None


def save(login: Login) -> Path:
    """Write the login (mode 0600, in a 0700 folder), replacing the old one whole."""
    where = path()
    where.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(where.parent, 0o700)
    temporary = where.with_name(f".{FILE}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(asdict(login), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, where)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return where


def remove() -> bool:
    try:
        path().unlink()
    except FileNotFoundError:
        return False
    return True


@contextmanager
def locked() -> Iterator[None]:
    """Only one command at a time renews the tokens."""
    where = folder()
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(where / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def provider_error(resp: httpx.Response) -> tuple[str, str]:
    """An OAuth error answer: its ``error`` code and a short description."""
    from signoff.sdk._http import json_object

    body = json_object(resp)
    code = str(body.get("error") or f"http-{resp.status_code}")[:100]
    description = str(body.get("error_description") or "")[:200]
    return code, description


def post_form(url: str, form: dict[str, str]) -> httpx.Response:
    try:
        return httpx.post(url, data=form, timeout=TIMEOUT, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise LoginError(f"cannot reach the provider at {url}: {type(exc).__name__}") from None


def tokens(resp: httpx.Response) -> dict[str, Any]:
    """A token endpoint's successful answer, checked: an access token, bounded."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    access = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(access, str) or not access:
        raise LoginError("the provider's answer has no access token")
    refresh = body.get("refresh_token")
    if len(access) > MAX_TOKEN or (isinstance(refresh, str) and len(refresh) > MAX_TOKEN):
        raise LoginError("the provider's tokens are too long")
    return body


def expires_at(body: Mapping[str, Any], now: float | None = None) -> float:
    """When an access token expires: ``expires_in`` from now (at most a day); five
    minutes when the provider does not say."""
    given = body.get("expires_in")
    seconds = float(given) if isinstance(given, int | float) and given > 0 else 300.0
    return (time.time() if now is None else now) + min(seconds, 86_400.0)


def refreshed(login: Login) -> Login:
    """The login with new tokens from the refresh token, stored; LoginError (exit 2)
    when the provider refuses it (expired, revoked): then only ``signoff login`` helps.
    Under the lock, the file is read again first: another command may have renewed it."""
    with locked():
        current = load()
        same = current is not None and current.url == login.url
        if same and current is not None:
            if not current.expiring() and current.access_token != login.access_token:
                return current  # renewed by another command meanwhile
            login = current
        if not login.refresh_token:
            raise LoginError(f"your login to {login.url} has expired: run signoff login")
        resp = post_form(
            login.token_endpoint,
            {
                "grant_type": "refresh_token",
                "refresh_token": login.refresh_token,
                "client_id": login.client_id,
            },
        )
        if resp.status_code >= 400:
            code, _ = provider_error(resp)
            raise LoginError(
                f"your login to {login.url} has ended (the provider said {code}): run signoff login"
            )
        body = tokens(resp)
        refresh = body.get("refresh_token")
        renewed = replace(
            login,
            access_token=body["access_token"],
            refresh_token=refresh if isinstance(refresh, str) else login.refresh_token,
            expires_at=expires_at(body),
        )
        save(renewed)
        return renewed
