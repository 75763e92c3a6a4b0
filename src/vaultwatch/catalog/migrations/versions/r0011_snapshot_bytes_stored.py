"""Snapshots keep what their new content took in packs (`bytes_stored`), as agents report it.

The ransomware guard's "content that used to compress stops compressing"
compares it with `bytes_added` (the new content's raw size). Rows from before
this revision, and from agents that do not report it, stay NULL and are left
out of that rule.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 16:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bytes_stored", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("snapshots", schema=None) as batch_op:
        batch_op.drop_column("bytes_stored")
