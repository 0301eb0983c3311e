"""The CLI finds its server and token as the server's settings are found: the SIGNOFF_
prefix, names in any case, the documented defaults."""

from __future__ import annotations

from signoff.entrypoints.cli.client import ClientSettings


def test_defaults_when_nothing_is_set() -> None:
    assert ClientSettings.from_env({"HOME": "/root"}) == ClientSettings("http://127.0.0.1:8000", "")


def test_url_and_token_are_read_in_any_case() -> None:
    upper = ClientSettings.from_env({"SIGNOFF_URL": "http://a:1", "SIGNOFF_TOKEN": "so_x"})
    lower = ClientSettings.from_env({"signoff_url": "http://a:1", "signoff_token": "so_x"})
    assert upper == lower == ClientSettings("http://a:1", "so_x")
