"""Jobs of 1C records: their keys (``incoming:0000-000123:2024``, ``client:<guid>``) are longer than deal ids.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("deal_id", type_=sa.String(128), existing_type=sa.String(32), existing_nullable=False)
    with op.batch_alter_table("links") as batch:
        batch.alter_column("deal_id", type_=sa.String(128), existing_type=sa.String(64), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.alter_column("deal_id", type_=sa.String(64), existing_type=sa.String(128), existing_nullable=False)
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("deal_id", type_=sa.String(32), existing_type=sa.String(128), existing_nullable=False)
