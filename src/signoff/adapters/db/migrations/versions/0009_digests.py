"""Digest period per request (policy notify_mode: digest).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("digest_seconds", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("digest_seconds")
