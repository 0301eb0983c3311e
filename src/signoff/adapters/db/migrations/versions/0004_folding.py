"""Folding identical pending requests: a counter, and an index to find them.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("fold_count", sa.Integer, nullable=False, server_default="0"))
        batch.create_index("ix_requests_requester_digest", ["requester", "action_digest"])


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_requester_digest")
        batch.drop_column("fold_count")
