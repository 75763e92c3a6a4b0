"""Indexes that hold only the open roots and the symptoms, for correlation's check of every batch.

Correlation asks on every batch whether a root alarm is open and whether any
alarm is suppressed. During a storm PostgreSQL's statistics lag behind the
table, and it answered both by scanning the open alarms (40 ms a batch at
130,000 alarms). `ix_alarms_open_roots` is partial on the open alarms of the
root alert groups, and `ix_alarms_suppressed` (replacing the full
`ix_alarms_suppressed_by`) on the symptoms: both stay a few entries long, so
each question is one probe. The root groups are written out here as they were
at this revision; changing `ROOT_ALERT_GROUPS` needs a new migration.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 15:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN_ROOTS = (
    "cleared_at IS NULL AND alert_group IN ('gateway.down', 'gateway.unreachable', "
    "'node.down', 'node.unreachable', 'site.down', 'site.unreachable', "
    "'store.down', 'store.unavailable')"
)
_SUPPRESSED = "suppressed_by IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alarms_suppressed_by"))
        batch_op.create_index(
            "ix_alarms_suppressed",
            ["suppressed_by"],
            unique=False,
            postgresql_where=sa.text(_SUPPRESSED),
            sqlite_where=sa.text(_SUPPRESSED),
        )
        batch_op.create_index(
            "ix_alarms_open_roots",
            ["entity", "severity"],
            unique=False,
            postgresql_where=sa.text(_OPEN_ROOTS),
            sqlite_where=sa.text(_OPEN_ROOTS),
        )


def downgrade() -> None:
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_index("ix_alarms_open_roots")
        batch_op.drop_index("ix_alarms_suppressed")
        batch_op.create_index(
            batch_op.f("ix_alarms_suppressed_by"), ["suppressed_by"], unique=False
        )
