"""GitHub deployments: each deployment protection rule delivery, the request it became,
and when the decision reached GitHub (``github_deliveries``). The delivery id, and the
(repository, run, environment) it gates, are each unique, so a replayed delivery does
nothing.

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "github_deliveries",
        sa.Column("delivery_id", sa.String(100), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("repository", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(255), nullable=False),
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("installation_id", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("delivery_id", name="pk_github_deliveries"),
        sa.UniqueConstraint("repository", "run_id", "environment", name="uq_github_deliveries_run"),
    )
    op.create_index("ix_github_deliveries_request_id", "github_deliveries", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_github_deliveries_request_id", "github_deliveries")
    op.drop_table("github_deliveries")
