"""Where each request's Slack message lives, so it can be updated from any replica and
after a restart.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_messages",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("channel", sa.String(100), primary_key=True),
        sa.Column("slack_channel", sa.String(40), nullable=False),
        sa.Column("ts", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("slack_messages")
