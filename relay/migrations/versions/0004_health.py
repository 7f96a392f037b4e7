"""Health: one row that every ``/healthz`` check rewrites, to prove a write commits.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    health = op.create_table(
        "health",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("checked_at", sa.Float, nullable=False),
    )
    op.bulk_insert(health, [{"id": 1, "checked_at": 0.0}])


def downgrade() -> None:
    op.drop_table("health")
