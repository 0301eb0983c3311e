"""Engines for SQLite (embedded default) and PostgreSQL, and running migrations."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def create_db_engine(url: str, pool_size: int = 10, synchronous: str = "full") -> Engine:
    """An engine for ``url``: SQLite gets WAL, ``synchronous`` (FULL: the log synced at
    every commit; NORMAL: at checkpoints), a busy timeout and explicit BEGINs."""
    if url.startswith("postgresql") and "+psycopg" not in url.split("://", 1)[0]:
        url = url.replace("postgresql", "postgresql+psycopg", 1)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size * 2,
        )
        _configure_sqlite(engine, "NORMAL" if synchronous == "normal" else "FULL")
        return engine
    engine = sa.create_engine(
        url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True
    )
    from signoff.adapters.db.direct import hold_statements

    hold_statements(engine)
    return engine


def _configure_sqlite(engine: Engine, synchronous: str = "FULL") -> None:
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to run from several replicas at once.

    A database already at the newest migration is left alone without loading Alembic
    (most starts: it saves the import of Alembic and every migration script)."""
    if revision == "head" and is_current(engine):
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def is_current(engine: Engine) -> bool:
    """Whether the database is at the newest migration, read without Alembic: the stored
    revisions against the scripts' heads."""
    return _stored_revisions(engine) == _script_heads()


_ASSIGNMENT = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)


def _script_heads() -> frozenset[str] | None:
    """The newest revisions of the migration scripts, read from their text (``revision =``
    and ``down_revision =`` lines, as Alembic writes them); None if a script does not
    read that way, and then Alembic decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        text = script.read_text("utf-8")
        found = {m[1]: m[2] for m in _ASSIGNMENT.finditer(text)}
        try:
            rev = ast.literal_eval(found["revision"])
            down = ast.literal_eval(found.get("down_revision", "None"))
        except (KeyError, ValueError, SyntaxError):
            return None
        if not isinstance(rev, str):
            return None
        revisions.add(rev)
        parents.update([down] if isinstance(down, str) else down or ())
    return frozenset(revisions - parents) or None


def _stored_revisions(engine: Engine) -> frozenset[str]:
    """The revisions recorded in the database's ``alembic_version`` (none if new)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return frozenset()
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
        return frozenset(rows)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def main(argv: list[str]) -> int:
    """``python -m signoff.adapters.db.engine URL``: bring the database at URL to the newest
    migration, loading nothing else (``signoff serve`` runs it in a child process).
    Exit 0, or 2 with one line on stderr."""
    import sys

    engine = create_db_engine(argv[0], 1)
    try:
        upgrade(engine)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if engine.url.password:
            first = first.replace(str(engine.url.password), "***")
        print(f"error: migration failed: {type(exc).__name__}: {first}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
