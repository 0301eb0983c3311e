"""When each pending request's current stage times out, kept in a column so an inbox
of any size is filtered, counted and ordered without reading every request's stages.

Pending requests get theirs computed here, from their stages, as the application does.

Revision ID: 0016
Revises: 0015
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _deadline(stages: Any, current: int, started: Any, level: int) -> datetime | None:
    if not stages or started is None:
        return None
    stage = stages[current]
    timeout = stage.get("timeout_seconds")
    if level:
        timeout = stage.get("escalation_timeout_seconds") or timeout
    if not timeout:
        return None
    if isinstance(started, str):
        started = datetime.fromisoformat(started)
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return started + timedelta(seconds=float(timeout))  # type: ignore[no-any-return]


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True)))
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT id, stages, current_stage, stage_started_at, escalation_level "
            "FROM requests WHERE status = 'pending'"
        )
    ).all()
    sqlite = conn.dialect.name == "sqlite"
    for rid, stages, current, started, level in rows:
        if isinstance(stages, str):
            stages = json.loads(stages)
        at = _deadline(stages, current, started, level)
        if at is None:
            continue
        value = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else at
        conn.execute(
            sa.text("UPDATE requests SET deadline_at = :at WHERE id = :id"),
            {"at": value, "id": rid},
        )


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("deadline_at")
