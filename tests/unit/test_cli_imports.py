"""`signoff --help` and the HTTP commands start quickly: the CLI module loads no server
parts. A new top-level import of one of these in the CLI fails here."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = [
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
]


def test_the_cli_module_loads_no_server_parts() -> None:
    code = (
        "import json, sys, signoff.entrypoints.cli.main; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(loaded) == []
