"""The integrator's page: the newest mapping-check result per source, and indexes for its per-source numbers.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mapping_checks",
        sa.Column("source_id", sa.String(64), primary_key=True),
        sa.Column("checked_at", sa.Float, nullable=False),
        sa.Column("result", sa.Text, nullable=False),  # JSON: findings with file, line, message, suggestion
    )
    op.create_index("ix_jobs_finished", "jobs", ["status", "kind", "updated_at"])
    op.create_index("ix_jobs_source_status", "jobs", ["source_id", "kind", "status", "updated_at"])
    op.create_index("ix_jobs_source_created", "jobs", ["source_id", "kind", "created_at"])


def downgrade() -> None:
    for name in ("ix_jobs_source_created", "ix_jobs_source_status", "ix_jobs_finished"):
        op.drop_index(name, table_name="jobs")
    op.drop_table("mapping_checks")
