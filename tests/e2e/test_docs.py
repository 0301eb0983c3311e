"""The API's documentation page in a real browser, on a machine without internet: `/docs`
of a real `signoff serve` renders Swagger UI from the installed package and asks nothing
of any other host."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Response
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from ..conftest import TEST_DOMAIN
from .conftest import base_env, start_server, stop


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[str]:
    """`/docs` of a `signoff serve` on SQLite, under a name that is not loopback."""
    data_dir = tmp_path_factory.mktemp("docs")
    shutil.copy(sqlite_template, data_dir / "signoff.db")
    env = base_env(f"sqlite:///{data_dir / 'signoff.db'}", data_dir)
    server, url = start_server(env, data_dir, "server")
    try:
        yield f"http://api.{TEST_DOMAIN}:{urlsplit(url).port}/docs"
    finally:
        stop([server])


def test_docs_render_offline(
    page: Page, docs_url: str, offsite_requests: list[str], tmp_path: Path
) -> None:
    failed: list[str] = []

    def check(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    page.on("response", check)
    page.on("requestfailed", lambda request: failed.append(f"failed {request.url}"))
    page.on("pageerror", lambda error: failed.append(f"script error {error}"))

    page.goto(docs_url)
    try:
        page.locator(".opblock").first.wait_for(timeout=15_000)  # from /openapi.json
    except PlaywrightTimeout:
        page.screenshot(path=tmp_path / "docs.png")
        pytest.fail(f"no operations shown; refused: {offsite_requests}; failed: {failed}")
    page.wait_for_load_state("networkidle")  # whatever loads late is recorded too
    page.screenshot(path=tmp_path / "docs.png", full_page=True)

    assert page.title() == "Signoff API"
    assert page.locator(".info .title").inner_text().startswith("Signoff")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/requests/{request_id}/votes" in [p.replace("\u200b", "") for p in paths]
    # Swagger UI's style sheet is applied: an operation's method is a coloured label.
    method = page.locator(".opblock-summary-method").first
    assert method.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
    assert offsite_requests == []
    assert failed == []
