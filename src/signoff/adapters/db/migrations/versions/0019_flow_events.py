"""What is needed to measure the approval flow, without changing what was stored: when
each notification reached each approver, when each first looked at a request, on which
channel each vote came, when a stage escalated (``flow_events``); and with each request
what its requester was when the policies judged it (``requester_snapshot``: groups,
claims, admin), so a policy change can be replayed honestly after groups change; and
each requester's record per day (``history_tallies``: asks approved, executed, denied,
ended in an incident), filled from the requests already stored.

Revision ID: 0019
Revises: 0018
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
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
    tallies = op.create_table(
        "history_tallies",
        sa.Column("requester", sa.String(200), primary_key=True),
        sa.Column("action_type", sa.String(200), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("action_target", sa.String(500), primary_key=True),
        sa.Column("outcome", sa.String(16), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    # The record so far, from the requests stored (by the day they were decided; the
    # current state says which outcome: a failed or revoked grant was approved first).
    requests = sa.table(
        "requests",
        sa.column("requester", sa.String),
        sa.column("action_type", sa.String),
        sa.column("action_target", sa.String),
        sa.column("status", sa.String),
        sa.column("decided_at", sa.DateTime(timezone=True)),
    )
    counts: dict[tuple[str, str, object, str, str], int] = {}
    rows = op.get_bind().execute(
        sa.select(
            requests.c.requester,
            requests.c.action_type,
            requests.c.action_target,
            requests.c.status,
            requests.c.decided_at,
        ).where(requests.c.decided_at.is_not(None))
    )
    for row in rows:
        decided = row.decided_at
        if isinstance(decided, str):
            decided = datetime.fromisoformat(decided)
        for outcome in OUTCOMES_OF.get(row.status, ()):
            key = (row.requester, row.action_type, decided.date(), row.action_target, outcome)
            counts[key] = counts.get(key, 0) + 1
    if counts:
        op.bulk_insert(
            tallies,
            [
                {
                    "requester": k[0],
                    "action_type": k[1],
                    "day": k[2],
                    "action_target": k[3],
                    "outcome": k[4],
                    "n": n,
                }
                for k, n in counts.items()
            ],
        )


OUTCOMES_OF = {
    "approved": ("approved",),
    "expired": ("approved",),
    "executed": ("approved", "executed"),
    "failed": ("approved", "incident"),
    "revoked": ("approved", "incident"),
    "denied": ("denied",),
}


def downgrade() -> None:
    op.drop_table("history_tallies")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("requester_snapshot")
    op.drop_table("flow_events")
