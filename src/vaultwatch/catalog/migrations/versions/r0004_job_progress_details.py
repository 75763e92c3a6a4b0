"""Job progress details: the phase, the file being read and the bytes a resumed job skipped.

All three are nullable: older agents do not report them, and a finished job
has no current file.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 02:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("phase", sa.String(length=50), nullable=True))
        batch.add_column(sa.Column("current_file", sa.String(length=1024), nullable=True))
        batch.add_column(sa.Column("resumed_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("resumed_bytes")
        batch.drop_column("current_file")
        batch.drop_column("phase")
