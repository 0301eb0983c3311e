"""Drop requests.deadline_at: derived from the stages on every load and never read back;
``next_due_at`` is the one stored, indexed due time.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_deadline_at")
        batch.drop_column("deadline_at")


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_requests_deadline_at", ["deadline_at"])
