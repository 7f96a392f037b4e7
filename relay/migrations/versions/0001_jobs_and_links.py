"""Jobs (the queue and its history) and links (source deal -> target deal).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("deal_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("trigger", sa.String(64), nullable=False),
        sa.Column("event_token", sa.Text),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(32)),
        sa.Column("target_deal_id", sa.String(32)),
        sa.Column("last_error", sa.Text),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_until", sa.Float),
        sa.Column("available_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_jobs_ready", "jobs", ["status", "kind", "available_at"])
    op.create_index("ix_jobs_deal", "jobs", ["source_id", "deal_id", "status"])
    pending = sa.text("status = 'pending' AND kind = 'sync'")
    op.create_index("uq_jobs_one_pending_sync", "jobs", ["source_id", "deal_id"], unique=True,
                    sqlite_where=pending, postgresql_where=pending)
    op.create_table(
        "links",
        sa.Column("source_id", sa.String(64), primary_key=True),
        sa.Column("deal_id", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("target_deal_id", sa.String(32)),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("links")
    op.drop_index("uq_jobs_one_pending_sync", table_name="jobs")
    op.drop_index("ix_jobs_deal", table_name="jobs")
    op.drop_index("ix_jobs_ready", table_name="jobs")
    op.drop_table("jobs")
