"""SIGNOFF_SQLITE_SYNCHRONOUS: FULL by default (the log synced at every commit), NORMAL
when chosen; every connection of the pool gets it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from signoff.bootstrap import build
from signoff.config import Settings

from ..conftest import make_settings


@pytest.mark.parametrize(("chosen", "pragma"), [(None, 2), ("normal", 1), ("full", 2)])
def test_sqlite_syncs_as_configured(tmp_path: Path, chosen: str | None, pragma: int) -> None:
    extra = {"sqlite_synchronous": chosen} if chosen else {}
    app = build(make_settings(f"sqlite:///{tmp_path}/s.db", tmp_path, **extra))
    try:
        conns = [app.engine.connect() for _ in range(3)]
        try:
            assert {c.exec_driver_sql("PRAGMA synchronous").scalar() for c in conns} == {pragma}
        finally:
            for c in conns:
                c.close()
    finally:
        app.close()


def test_another_value_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValidationError, match="'full' or 'normal'"):
        Settings(sqlite_synchronous="off")  # type: ignore[arg-type]
