"""Durable deadlines: the next due time of every request, escalation and reminders.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("on_timeout", sa.String(16), nullable=False, server_default="timed_out")
        )
        batch.add_column(
            sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("reminders_sent", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_requests_next_due_at", ["next_due_at"])


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_next_due_at")
        for column in (
            "next_due_at",
            "expires_at",
            "reminders_sent",
            "escalation_level",
            "on_timeout",
        ):
            batch.drop_column(column)
