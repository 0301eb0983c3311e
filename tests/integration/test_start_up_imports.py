"""Start-up loads only what it uses: `signoff --help` and the HTTP commands load no server
parts, and the server loads no parser, driver or tool that its configuration does not
call for. A new top-level import of one of these fails here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CLI_NEVER = [
    "httpx",
    "pydantic_settings",
    "sqlalchemy",
    "alembic",
    "fastapi",
    "uvicorn",
    "cel",
    "sqlglot",
    "psycopg",
    "jwt",
    "yaml",
    "signoff.config",
    "signoff.bootstrap",
    "signoff.domain.actions",  # the domain's dataclasses: loaded by `signoff` on first use
    "signoff.domain.requests",
    "signoff.domain.events",
]
# printing a help loads nothing more: Typer converts values through pydantic, but not
# the absent --help flags of the groups above a command (QuickHelpGroup)
HELP_NEVER = [*CLI_NEVER, "pydantic"]
# on SQLite, with no targets file and a database already migrated
SERVER_NEVER = [
    "sqlglot",
    "psycopg",
    "psycopg_pool",
    "alembic",
    "prompt_toolkit",
    "cel.cli",
    "httpx",
    "aiosmtplib",
    "webauthn",  # loaded by the first passkey ceremony
    "pygments",  # loaded by the first highlighted action
]


def loaded_after(code: str, names: list[str]) -> list[str]:
    probe = (
        f"{code}\nimport json, sys; print(json.dumps([m for m in {names!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    found: list[str] = json.loads(out.splitlines()[-1])
    return found


def test_the_cli_module_loads_no_server_parts() -> None:
    assert loaded_after("import signoff.entrypoints.cli.main", CLI_NEVER) == []


@pytest.mark.parametrize("words", [[], ["inbox"], ["audit", "verify"], ["policy", "check"]])
def test_a_help_loads_no_server_parts_and_no_pydantic(words: list[str]) -> None:
    run = f"sys.argv = ['signoff', *{words!r}, '--help']; main()"
    code = (
        "import contextlib, io, sys; from signoff.entrypoints.cli.main import main\n"
        f"with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()): {run}"
    )
    assert loaded_after(code, HELP_NEVER) == []


def test_the_package_loads_the_sdk_at_its_first_use() -> None:
    sdk = ["httpx", "signoff.sdk._http", "signoff.sdk.client", "signoff.sdk.aio"]
    assert loaded_after("import signoff", sdk) == []
    assert loaded_after("import signoff; signoff.Client", sdk) == sdk[:3]


def test_the_server_loads_no_unused_parts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from signoff.adapters.db.engine import "
            f"create_db_engine, upgrade; upgrade(create_db_engine({url!r}, 1))",
        ],
        check=True,
    )
    code = (
        "from signoff.bootstrap import build; from signoff.config import Settings; "
        "from signoff.entrypoints.api.app import create_app; "
        f"app = build(Settings(database_url={url!r}, channels='log')); create_app(app); "
        "app.close()"
    )
    assert loaded_after(code, SERVER_NEVER) == []


def test_the_server_migrates_a_new_database_in_a_child_process(tmp_path: Path) -> None:
    """The migration runs apart, so the server never holds Alembic (about 15 MiB)."""
    url = f"sqlite:///{tmp_path / 'signoff.db'}"
    code = (
        "from signoff.entrypoints.cli.local import migrate_apart\n"
        f"child = migrate_apart({url!r})\n"
        "assert child is not None and child.wait() == 0\n"
        f"assert migrate_apart({url!r}) is None  # current now"
    )
    assert loaded_after(code, ["alembic", "mako"]) == []
