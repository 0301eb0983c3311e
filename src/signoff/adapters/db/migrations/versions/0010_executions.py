"""The gateway: executions, and read-only grants.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("read_only", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("executors", sa.JSON, nullable=False, server_default="[]"))
    op.create_table(
        "executions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("request_id", sa.String(36), sa.ForeignKey("requests.id"), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("ok", sa.Boolean),
        sa.Column("summary", sa.Text),
        sa.Column("output", sa.JSON),
        sa.Column("output_digest", sa.String(64)),
    )
    op.create_index("ix_executions_request_id", "executions", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_executions_request_id", "executions")
    op.drop_table("executions")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("executors")
        batch.drop_column("read_only")
