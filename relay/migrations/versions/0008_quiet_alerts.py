"""Quiet sources: per source, the last call whose silence the integrator was alerted about.

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
    op.create_table(
        "quiet_alerts",
        sa.Column("source_id", sa.String(64), primary_key=True),
        sa.Column("last_call", sa.Float, nullable=False),  # created_at of the newest call before the silence
        sa.Column("alerted_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("quiet_alerts")
