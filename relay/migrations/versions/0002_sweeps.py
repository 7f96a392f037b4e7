"""Recovery sweeps: a watermark per source, and the source's DATE_MODIFY on each link.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("source_modified", sa.String(40)))
    op.create_table(
        "sweeps",
        sa.Column("source_id", sa.String(64), primary_key=True),
        sa.Column("watermark", sa.String(40)),
        sa.Column("next_run_at", sa.Float, nullable=False),
        sa.Column("last_run_at", sa.Float),
        sa.Column("last_result", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("sweeps")
    with op.batch_alter_table("links") as batch:
        batch.drop_column("source_modified")
