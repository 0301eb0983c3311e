"""What is needed to measure the approval flow, without changing what was stored: when
each notification reached each approver, when each first looked at a request, on which
channel each vote came, when a stage escalated (``flow_events``); and with each request
what its requester was when the policies judged it (``requester_snapshot``: groups,
claims, admin), so a policy change can be replayed honestly after groups change.

Revision ID: 0019
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("person", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_flow_events_request", "flow_events", ["request_id", "kind", "person"])
    op.create_index("ix_flow_events_person", "flow_events", ["person", "kind", "at"])
    op.create_index("ix_flow_events_at", "flow_events", ["at"])
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("requester_snapshot", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("requester_snapshot")
    op.drop_table("flow_events")
