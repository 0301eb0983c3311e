"""Alembic environment: the engine comes from ``config.attributes`` (see engine.py)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from signoff.adapters.db.tables import metadata

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    if connection.dialect.name == "postgresql":
        # Replicas starting together take turns; the loser finds the schema current.
        connection.execute(sa.text("SELECT pg_advisory_lock(74201)"))
    try:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_unlock(74201)"))
            connection.commit()
