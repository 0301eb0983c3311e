"""The gateway keeps its targets' secrets and paths: no secret a target holds comes back
in any output (an upstream that echoes headers, a statement that selects it, a
malformed connection string), and an HTTP target's path cannot leave its base path by
any encoding."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from signoff.adapters.targets_file import load_targets
from signoff.domain.actions import Action
from signoff.domain.errors import InvalidInput, PolicyError

from ..conftest import SCRATCH_SECRET

TOKEN = "tok-3c9f1e7d5b2a"


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    """An upstream that answers with the request's path and headers, as many debug
    endpoints and misconfigured proxies do."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Echo-Authorization", self.headers.get("Authorization", ""))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def targets(tmp_path: Path, monkeypatch, *items: dict) -> dict:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": list(items)}))
    return load_targets(path)


def http_target(url: str) -> dict:
    return {
        "name": "api",
        "executor": "http",
        "base_url": f"{url}/v1/",
        "headers": {"Authorization": {"env": "API_TOKEN", "prefix": "Bearer "}},
    }


@pytest.mark.parametrize(
    "path",
    [
        "../admin",
        "%2e%2e/admin",
        "%2E%2E/admin",
        ".%2e/admin",
        "%2e./admin",
        "..%2fadmin",
        "a/%2e%2e/%2e%2e/admin",
        "a/%2F../admin",
        "a\\..\\admin",
        "a%5c..%5cadmin",
        "./admin",
        "a/./b",
        "a/../../admin",
        "x#frag",
        "a%00b",
        "http://evil.example/x",
    ],
)
def test_a_path_that_could_leave_the_base_is_refused(tmp_path, monkeypatch, echo, path) -> None:
    target = targets(tmp_path, monkeypatch, http_target(echo))["api"]
    with pytest.raises(InvalidInput):
        target.check(Action("http.request", "api", {"method": "GET", "path": path}))


@pytest.mark.parametrize("path", ["deploys", "/deploys/7", "a%20b", "q?x=%2e%2e&y=..", "a..b"])
def test_ordinary_paths_stay_under_the_base(tmp_path, monkeypatch, echo, path) -> None:
    target = targets(tmp_path, monkeypatch, http_target(echo))["api"]
    action = Action("http.request", "api", {"method": "GET", "path": path})
    target.check(action)
    done = target.run(action, read_only=False)
    assert done.ok and json.loads(done.output["body"])["path"].startswith("/v1/")


def test_an_upstream_that_echoes_the_credentials_returns_none_of_them(
    tmp_path, monkeypatch, echo, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    target = targets(tmp_path, monkeypatch, http_target(echo))["api"]
    done = target.run(Action("http.request", "api", {"method": "GET", "path": "x"}), False)
    assert done.ok
    shown = json.dumps([done.summary, done.output])
    assert TOKEN not in shown and "[secret]" in shown
    assert TOKEN not in caplog.text


def test_a_statement_that_selects_the_password_gets_it_hidden(
    tmp_path, monkeypatch, scratch: str
) -> None:
    monkeypatch.setenv("SCRATCH_DSN", scratch)
    found = targets(
        tmp_path,
        monkeypatch,
        {"name": "pg", "executor": "postgres", "dsn": {"env": "SCRATCH_DSN"}},
    )
    try:
        done = found["pg"].run(
            Action("sql.execute", "pg", {"sql": f"SELECT 'x-{SCRATCH_SECRET}-y' AS leak"}), True
        )
        assert done.ok and done.output["rows"] == [["x-[secret]-y"]]
        failed = found["pg"].run(
            Action("sql.execute", "pg", {"sql": f'SELECT nope FROM "{SCRATCH_SECRET}"'}), True
        )
        assert not failed.ok and SCRATCH_SECRET not in failed.summary
    finally:
        found["pg"].close()


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app:pa ss%word-91f3@127.0.0.1:5432/db",
        "host=127.0.0.1 password='unterminated-91f3",
    ],
)
def test_a_malformed_connection_string_is_refused_without_showing_it(
    tmp_path, monkeypatch, caplog, dsn
) -> None:
    monkeypatch.setenv("BAD_DSN", dsn)
    with pytest.raises(PolicyError) as info:
        targets(
            tmp_path, monkeypatch, {"name": "pg", "executor": "postgres", "dsn": {"env": "BAD_DSN"}}
        )
    text = "\n".join(str(p) for p in info.value.problems)
    assert "BAD_DSN" in text and "not a valid PostgreSQL connection string" in text
    assert "91f3" not in text and "91f3" not in caplog.text
