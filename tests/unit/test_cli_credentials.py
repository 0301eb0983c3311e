"""The login `signoff login` keeps: 0600 in a 0700 folder of the user's config, written
whole; refused when others may read it or it is not a login; renewed once when two
commands race (the second takes what the first wrote)."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from signoff.entrypoints.cli import credentials
from signoff.entrypoints.cli.credentials import Login, LoginError


@pytest.fixture(autouse=True)
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    return tmp_path / "signoff"


def login(**changes: object) -> Login:
    values: dict[str, object] = {
        "url": "http://signoff.test",
        "issuer": "http://idp.test",
        "client_id": "signoff-cli",
        "token_endpoint": "http://127.0.0.1:9/token",  # nothing listens: never called
        "revocation_endpoint": "",
        "access_token": "a.b.c",
        "refresh_token": "r1",
        "expires_at": time.time() + 600,
        **changes,
    }
    return Login(**values)  # type: ignore[arg-type]


def test_saved_0600_in_a_0700_folder_and_read_back(config: Path) -> None:
    assert credentials.load() is None
    saved = login()
    where = credentials.save(saved)
    assert where == config / "login.json"
    assert stat.S_IMODE(where.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    assert credentials.load() == saved
    assert [p.name for p in config.iterdir()] == ["login.json"]  # no temporary file left
    assert credentials.remove() and not credentials.remove()


def test_a_file_others_may_read_or_that_is_not_a_login_is_refused(config: Path) -> None:
    where = credentials.save(login())
    os.chmod(where, 0o640)
    with pytest.raises(LoginError, match="may be read by others"):
        credentials.load()
    os.chmod(where, 0o600)
    where.write_text(json.dumps({"url": "x"}))
    with pytest.raises(LoginError, match="not a Signoff login"):
        credentials.load()
    where.write_text(json.dumps({**login().__dict__, "expires_at": "soon"}))
    with pytest.raises(LoginError, match="not a Signoff login"):
        credentials.load()


def test_expiring_thirty_seconds_ahead() -> None:
    now = time.time()
    assert login(expires_at=now + 10).expiring(now)
    assert not login(expires_at=now + 120).expiring(now)


def test_a_renewal_another_command_made_meanwhile_is_taken_not_repeated() -> None:
    old = login(expires_at=time.time() - 1)
    credentials.save(login(access_token="d.e.f", refresh_token="r2"))  # the other command's
    # the token endpoint is unreachable: had it been called, this would raise
    assert credentials.refreshed(old).access_token == "d.e.f"


def test_without_a_refresh_token_the_login_has_expired() -> None:
    old = login(expires_at=time.time() - 1, refresh_token="")
    credentials.save(old)
    with pytest.raises(LoginError, match="has expired: run signoff login"):
        credentials.refreshed(old)
