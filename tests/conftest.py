"""Shared fixtures: real SQLite files and a real PostgreSQL database, real servers, a real
headless browser."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg.conninfo import make_conninfo

from signoff.adapters.db import tables as t
from signoff.adapters.db.engine import create_db_engine, upgrade
from signoff.bootstrap import App, build
from signoff.config import Settings
from signoff.domain.requests import Request
from signoff.entrypoints.api.app import create_app
from signoff.services.auth import create_token
from signoff.services.dependencies import Services
from signoff.services.ports import Clock, FixedClock
from signoff.services.views import find_request

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

FIXTURES = Path(__file__).parent / "fixtures"
PG_ADMIN_URL = os.environ.get("SIGNOFF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``make test`` runs on two pytest-xdist workers with ``--dist loadfile``: a module's
    tests stay on one worker, so its module-scoped servers start once. The end-to-end
    modules are the slow ones, and their SQLite and PostgreSQL halves share no process:
    there, the ``[sqlite]`` tests make a scope of their own that may go to the other
    worker."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SplitEndToEndBySQLite(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope: str = super()._split_scope(nodeid)
            params = nodeid.rpartition("[")[2].rstrip("]").split("-") if "[" in nodeid else []
            if scope.startswith("tests/e2e/") and "sqlite" in params:  # [sqlite], [sqlite-http]
                return f"{scope}::sqlite"
            return scope

    return SplitEndToEndBySQLite(config, log)


def _pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose tool is missing here; under CI=true, where everything must run,
    fail it instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (and CI=true: nothing may be skipped)")
    pytest.skip(reason)


def skip_unless_pg_reachable() -> None:
    problem = _pg_reachable()
    if problem is not None:
        unavailable(f"PostgreSQL is unreachable at {PG_ADMIN_URL}: {problem}")


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new PostgreSQL database at the head revision, dropped afterwards."""
    skip_unless_pg_reachable()
    name = f"signoff_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
        engine = create_db_engine(url, 2)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "signoff.db"
    engine = create_db_engine(f"sqlite:///{path}", 1)
    upgrade(engine)
    engine.dispose()
    return path


def _reset_statements() -> str:
    """One batch that empties every table but the signing keys, restarts the serial ids
    and puts the audit head back at the start (as a fresh database has it)."""
    kept = {"signing_keys"}
    tables = [tbl for tbl in reversed(t.metadata.sorted_tables) if tbl.name not in kept]
    parts = [f"DELETE FROM {tbl.name}" for tbl in tables]  # children before parents
    parts += [
        f"SELECT setval(pg_get_serial_sequence('{tbl.name}', '{col.name}'), 1, false)"
        for tbl in tables
        for col in tbl.primary_key.columns
        if col.autoincrement is True
    ]
    parts.append(f"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{'0' * 64}')")
    return ";\n".join(parts)


RESET_POSTGRES = _reset_statements()


def _reset_postgres(url: str) -> None:
    """Empty the test database between tests. One DELETE batch on one raw connection:
    about 30 ms, where TRUNCATE of the twelve tables took about 250 ms a test."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        conn.execute(RESET_POSTGRES)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """Each test runs once on a fresh SQLite file and once on a clean PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "signoff.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    _reset_postgres(url)
    return url


# One signing key for the whole test session, given as SIGNOFF_SIGNING_KEYS would be:
# the PostgreSQL test database outlives each test's data folder, and registers its
# public key once. Tests of the key file itself pass signing_keys="".
TEST_SIGNING_KEYS = (
    Ed25519PrivateKey.generate()
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode()
)
# ... and the servers and CLI commands the end-to-end tests start inherit it.
os.environ["SIGNOFF_SIGNING_KEYS"] = TEST_SIGNING_KEYS


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "signing_keys": TEST_SIGNING_KEYS,
        "database_url": database_url,
        "data_dir": tmp_path,
        "policies_dir": FIXTURES / "policies",
        "users_file": FIXTURES / "users.yaml",
        "sse_keepalive_seconds": 5,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def signoff_app(database_url: str, tmp_path: Path) -> Iterator[App]:
    app = build(make_settings(database_url, tmp_path))
    yield app
    app.close()


def bound_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port (so its URL is known early)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LiveServer:
    """A real uvicorn server on a loopback port, in a thread of the test process."""

    def __init__(self, app: App, sock: socket.socket | None = None) -> None:
        self.app = app
        self.api = create_app(app)
        self.sock = sock or bound_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.api, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.tokens = {u: create_token(app.services, u, "tests") for u in USERS}

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        # at once: a page's live-update stream left open would hold a graceful
        # shutdown (and the test's teardown) for the join's whole 10 s
        self.server.should_exit = True
        self.server.force_exit = True
        self.thread.join(10)
        self.sock.close()

    def client(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def server(signoff_app: App) -> Iterator[LiveServer]:
    live = LiveServer(signoff_app).start()
    yield live
    live.stop()


@pytest.fixture
def as_user(server: LiveServer) -> Iterator[dict[str, httpx.Client]]:
    clients = {u: server.client(u) for u in USERS}
    clients["anonymous"] = server.client(None)
    yield clients
    for c in clients.values():
        c.close()


def fixed_app(database_url: str, tmp_path: Path, clock: Clock) -> App:
    return build(make_settings(database_url, tmp_path), clock=clock)


@pytest.fixture
def staged_site(database_url: str, tmp_path: Path) -> Iterator[tuple[App, LiveServer, FixedClock]]:
    """A server on its own database with the two-stage policy of ``fixtures/staged``
    (dba, escalating to alice after 30 minutes, then security) and a clock that stands
    at 2026-11-21 09:00 UTC until a test moves it."""
    clock = FixedClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(
        database_url, tmp_path, public_url=url, policies_dir=FIXTURES / "staged"
    )
    app = build(settings, clock=clock)
    server = LiveServer(app, sock).start()
    try:
        yield app, server, clock
    finally:
        server.stop()
        app.close()


# ----- a scratch PostgreSQL database that executors act on (the gateway) -----------

SCRATCH_SECRET = "s3cret-dsn-password-7f1c"  # trust auth ignores it; it must appear nowhere


@pytest.fixture(scope="module")
def scratch() -> Iterator[str]:
    """A scratch database on the real PostgreSQL, for one test module; its DSN carries a
    password that trust auth ignores and that must show up nowhere."""
    skip_unless_pg_reachable()
    name = f"signoff_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(PG_ADMIN_URL, dbname=name, password=SCRATCH_SECRET)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def target_db(scratch: str) -> str:
    with psycopg.connect(scratch, autocommit=True) as conn:
        conn.execute(
            "DROP TABLE IF EXISTS accounts; DROP SEQUENCE IF EXISTS ticket_seq;"
            "CREATE TABLE accounts (id int primary key, email text, card text, balance int);"
            "CREATE SEQUENCE ticket_seq;"
            "INSERT INTO accounts SELECT i, 'user' || i || '@example.com',"
            " '4111111111111' || lpad(i::text, 3, '0'), 100 FROM generate_series(1, 8) i"
        )
    return scratch


# ----- an HTTP receiver on loopback (webhooks, Teams, Apprise, HTTP targets) ---------


class HttpRecorder:
    """Records every call (path, raw and JSON body, headers with lower-case names) and
    answers 503 to the first ``fail_first`` calls, then ``status``."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.status = 200
        self.calls: list[dict[str, Any]] = []
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rec.calls.append(
                    {
                        "path": self.path,
                        "raw": raw,
                        "body": json.loads(raw or b"{}"),
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                )
                failing = len(rec.calls) <= rec.fail_first
                answer = b'{"received": true}'
                self.send_response(503 if failing else rec.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # a short poll: shutdown() waits for serve_forever's next poll (0.5 s by default)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def at(self, path: str) -> list[dict[str, Any]]:
        """The JSON bodies received at ``path``."""
        return [c["body"] for c in self.calls if c["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[HttpRecorder]:
    """A HttpRecorder; parametrize indirectly with the number of calls to fail first."""
    rec = HttpRecorder(getattr(request, "param", 0))
    yield rec
    rec.close()


def reload(svc: Services, request_id: str) -> Request:
    """A request as it is stored now."""
    found = find_request(svc.uow, request_id)
    assert found is not None, f"request {request_id} is not stored"
    return found


# ----- a headless browser (Debian's chromium, driven by Playwright) -------------------

# The browser resolves every name in .signoff.test to 127.0.0.1, so a test can load its
# pages as a deployment's are, under a name that is not loopback (scripts may treat
# localhost apart: Swagger UI's validator badge, for one, never calls out from there).
TEST_DOMAIN = "signoff.test"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    f"--host-resolver-rules=MAP *.{TEST_DOMAIN} 127.0.0.1",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium per test module: the system's (``make test`` installs
    Debian's package when run as root), as Playwright's own download needs the internet.
    Not per session: Playwright's sync API leaves its event loop marked as running in
    the thread while it is open, and a later module's ``asyncio.run`` would refuse to
    start. A launch costs about a second."""
    executable = shutil.which("chromium")
    if executable is None:
        unavailable("chromium is not installed: make test installs it when run as root")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def on_this_machine(url: str) -> bool:
    """Whether a request stays on this machine: loopback, a name in .signoff.test, or
    data the page already holds."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    host = parts.hostname or ""
    return host in ("127.0.0.1", "localhost", "::1") or host.endswith(f".{TEST_DOMAIN}")


@pytest.fixture
def offsite_requests() -> list[str]:
    """The URLs the ``page`` tried to reach off this machine (each was refused)."""
    return []


@pytest.fixture
def page(browser: Browser, offsite_requests: list[str]) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies or storage from other tests) with
    the network cut off: any HTTP request to anywhere but this machine is aborted and
    recorded in ``offsite_requests``. Service workers are blocked, as routing does not
    see their requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")

    def guard(route: Route) -> None:
        url = route.request.url
        if on_this_machine(url):
            route.continue_()
        else:
            offsite_requests.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", guard)
    opened = context.new_page()
    yield opened
    context.close()


# ----- a real OpenID provider on loopback (oidc-provider on Node) ---------------------

OIDC_PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
OIDC_CLIENT_ID = "signoff"
OIDC_CLIENT_SECRET = "signoff-test-secret"


@contextmanager
def oidc_provider(redirect_uris: list[str], **settings: str) -> Iterator[str]:
    """Start tests/oidc_provider/server.js (``make test`` runs ``npm ci`` for it) on a
    free loopback port, wait for its discovery document, and yield its issuer URL.
    ``settings``: more of its environment (CLI_CLIENT_ID, ACCOUNTS_FILE, ...)."""
    node = shutil.which("node")
    if node is None:
        unavailable("node is not installed: the OpenID provider of the SSO tests needs it")
    if not (OIDC_PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        unavailable("tests/oidc_provider has no node_modules: run `make oidc-provider`")
    with bound_socket() as sock:
        port = sock.getsockname()[1]
    issuer = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PORT": str(port),
        "REDIRECT_URIS": ",".join(redirect_uris),
        "CLIENT_ID": OIDC_CLIENT_ID,
        "CLIENT_SECRET": OIDC_CLIENT_SECRET,
        **settings,
    }
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen(
        [node, "server.js"],
        cwd=OIDC_PROVIDER_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                found = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2)
                if found.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait(5)
                log.seek(0)
                said = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"the OpenID provider did not start: {said}")
            time.sleep(0.1)
        yield issuer
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
