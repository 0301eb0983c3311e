"""Indexes that match the request path's queries: the fold check, and lists by time.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_requests_fold", "requests", ["requester", "action_digest", "status", "created_at"]
    )
    op.drop_index("ix_requests_requester_digest", table_name="requests")
    op.create_index("ix_requests_created", "requests", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_requests_created", table_name="requests")
    op.create_index("ix_requests_requester_digest", "requests", ["requester", "action_digest"])
    op.drop_index("ix_requests_fold", table_name="requests")
