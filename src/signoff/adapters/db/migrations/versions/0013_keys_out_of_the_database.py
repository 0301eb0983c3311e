"""Private signing keys leave the database: ``signing_keys.private_pem`` may be empty
(the key ring moves existing keys out into the key file at start, and empties it).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch:
        batch.alter_column("private_pem", existing_type=sa.Text, nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("signing_keys") as batch:
        batch.alter_column("private_pem", existing_type=sa.Text, nullable=False)
