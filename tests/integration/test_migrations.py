"""Migrations: `upgrade` skips Alembic only for a database that is already current."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from signoff.adapters.db.engine import MIGRATIONS, create_db_engine, current_revision, upgrade


def test_the_heads_read_from_the_scripts_are_alembics() -> None:
    from signoff.adapters.db.engine import _script_heads

    assert _script_heads() == frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


def test_a_database_behind_is_brought_to_head_and_a_current_one_stays(tmp_path: Path) -> None:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    engine = create_db_engine(f"sqlite:///{tmp_path / 'signoff.db'}", 1)
    try:
        upgrade(engine, "0009")
        assert not sa.inspect(engine).has_table("executions")
        upgrade(engine)
        assert current_revision(engine) == head
        assert sa.inspect(engine).has_table("executions")
        upgrade(engine)
        assert current_revision(engine) == head
    finally:
        engine.dispose()
