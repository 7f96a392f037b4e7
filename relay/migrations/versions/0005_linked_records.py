"""Links for any CRM record: keyed by (origin, entity type, origin id); a print of the files last sent.

The links table was keyed by (source, deal id).  Companies and contacts (and, next, 1C documents) are
linked the same way, so the key gains ``entity`` (``deal``, ``company``, ``contact``…); existing rows
are deals.  The table is rebuilt (a primary key cannot be altered in place on SQLite).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = ("source_id", "deal_id", "state", "target_deal_id", "fingerprint", "created_at", "updated_at",
            "source_modified", "verify_at")


def _table(name: str, with_entity: bool) -> None:
    key = ["source_id", "entity", "deal_id"] if with_entity else ["source_id", "deal_id"]
    columns = [
        sa.Column("source_id", sa.String(64), nullable=False),
        *([sa.Column("entity", sa.String(16), nullable=False, server_default="deal")] if with_entity else []),
        sa.Column("deal_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("target_deal_id", sa.String(32)),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("source_modified", sa.String(40)),
        sa.Column("verify_at", sa.Float),
        *([sa.Column("files", sa.String(64))] if with_entity else []),
        sa.PrimaryKeyConstraint(*key, name=f"pk_{name}"),
    ]
    op.create_table(name, *columns)


def _move(new: bool) -> None:
    names = ", ".join(_COLUMNS)
    _table("links_next", with_entity=new)
    where = " WHERE entity = 'deal'" if not new else ""
    op.execute(f"INSERT INTO links_next ({names}) SELECT {names} FROM links{where}")
    op.drop_index("ix_links_verify", table_name="links")
    op.drop_table("links")
    op.rename_table("links_next", "links")
    op.create_index("ix_links_verify", "links", ["verify_at"])


def upgrade() -> None:
    _move(new=True)


def downgrade() -> None:
    _move(new=False)
