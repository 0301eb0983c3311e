"""Who may redeem a grant besides its requester and executors: the target's
enforcement points (policy grant.redeemers); and who may see a request besides those
involved (policy visible_to).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("redeemers", sa.JSON, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("viewers", sa.JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("viewers")
        batch.drop_column("redeemers")
