"""A bounded schemathesis run over the OpenAPI document, signed in, on both databases:
whatever the generated input, the API answers without a 5xx, and every error is
problem+json."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from signoff.bootstrap import App, build
from signoff.entrypoints.api.app import create_app
from signoff.services.auth import create_token

from ..conftest import _reset_postgres, make_settings


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        shutil.copy(sqlite_template, folder / "signoff.db")
        url = f"sqlite:///{folder / 'signoff.db'}"
    else:
        url = request.getfixturevalue("pg_database")
        _reset_postgres(url)
    app: App = build(make_settings(url, folder))
    token = create_token(app.services, "dave", "fuzz")
    yield {"app": app, "asgi": create_app(app), "token": token}
    app.close()


def test_no_input_makes_the_api_fail(fuzzed: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed["asgi"])
    headers = {"Authorization": f"Bearer {fuzzed['token']}"}
    checked = []
    for found in schema.get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            response = case.call(headers=headers)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, (where, response.text[:500])
            kind = (response.headers.get("content-type") or [""])[0]
            if case.path.startswith("/links/"):  # pages for people, errors included
                assert kind.startswith("text/html"), where
            elif response.status_code >= 400:
                assert kind.startswith("application/problem+json"), where
                body = response.json()
                assert body["status"] == response.status_code and body["detail"], where

        call()
        checked.append(operation.label)
    assert len(checked) >= 14, checked  # every operation of the API was exercised
