"""Single sign-on (OIDC): the people a provider signed in, by (issuer, subject), with
the Signoff name they got at their first sign-in and the email and groups of their
latest; and the sign-ins under way (state, nonce and PKCE verifier, kept server-side).

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oidc_identities",
        sa.Column("issuer", sa.String(500), primary_key=True),
        sa.Column("subject", sa.String(255), primary_key=True),
        sa.Column("user_name", sa.String(200), nullable=False, unique=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("signed_in_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "oidc_logins",
        sa.Column("state", sa.String(64), primary_key=True),
        sa.Column("browser_hash", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("verifier", sa.String(128), nullable=False),
        sa.Column("next_path", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("oidc_logins")
    op.drop_table("oidc_identities")
