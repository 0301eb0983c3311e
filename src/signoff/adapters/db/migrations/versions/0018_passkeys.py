"""Passkeys: the WebAuthn credentials people enroll on their profile, for stages that
ask for one (``approve_with: passkey``), and the challenges given out (single-use, bound
to a person and, for a vote, to the request, the decision and the action's digest).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "passkeys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_name", sa.String(200), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(1024), nullable=False, unique=True),
        sa.Column("public_key", sa.LargeBinary(2048), nullable=False),
        sa.Column("sign_count", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_passkeys_user_name", "passkeys", ["user_name"])
    op.create_table(
        "passkey_challenges",
        sa.Column("challenge", sa.String(100), primary_key=True),
        sa.Column("user_name", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(10), nullable=False),
        sa.Column("request_id", sa.String(36)),
        sa.Column("decision", sa.String(10)),
        sa.Column("action_digest", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("passkey_challenges")
    op.drop_index("ix_passkeys_user_name", table_name="passkeys")
    op.drop_table("passkeys")
