"""Links: when to look for extra copies of a created deal on the target.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("verify_at", sa.Float))
        batch.create_index("ix_links_verify", ["verify_at"])


def downgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.drop_index("ix_links_verify")
        batch.drop_column("verify_at")
