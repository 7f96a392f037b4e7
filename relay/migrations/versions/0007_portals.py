"""Application sources: the OAuth tokens each portal gave at install (encrypted), per source.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portals",
        sa.Column("source_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("access_token", sa.Text, nullable=False),  # Fernet-sealed
        sa.Column("refresh_token", sa.Text, nullable=False),  # Fernet-sealed
        sa.Column("application_token", sa.Text, nullable=False),  # Fernet-sealed
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),  # +1 with every rotation
        sa.Column("refreshing_until", sa.Float),  # a refresh is in flight until then (one per portal)
        sa.Column("setup_done", sa.Integer, nullable=False, server_default="0"),  # robot + bindings made
        sa.Column("installed_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("portals")
