"""Lighter alarm indexes: every index is written by every new alarm of a storm.

`ix_alarms_alert_group_severity` goes: the alert group queries (correlation's
open roots, the list by group) are answered by `ix_alarms_alert_group_last_occurrence`,
which starts with the same column. `ix_alarms_cleared_at_severity` becomes
`ix_alarms_cleared`, partial on the cleared alarms that housekeeping looks
for: new (open) alarms are not written into it. The console's counters read
`ix_alarms_open_worst_first` instead, which gains a trailing `cleared_at`
(NULL in every entry) so SQLite counts from the index alone.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 07:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _open_worst_first(columns: list[str]) -> None:
    """The open alarms' index, worst first, on `columns`."""
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alarms_open_worst_first",
            columns,
            unique=False,
            postgresql_where=sa.text("cleared_at IS NULL"),
            sqlite_where=sa.text("cleared_at IS NULL"),
        )


def upgrade() -> None:
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alarms_alert_group_severity"))
        batch_op.drop_index(batch_op.f("ix_alarms_cleared_at_severity"))
        batch_op.create_index(
            "ix_alarms_cleared",
            ["cleared_at"],
            unique=False,
            postgresql_where=sa.text("cleared_at IS NOT NULL"),
            sqlite_where=sa.text("cleared_at IS NOT NULL"),
        )
        batch_op.drop_index("ix_alarms_open_worst_first")
    _open_worst_first(["severity", "last_occurrence", "id", "cleared_at"])


def downgrade() -> None:
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_index("ix_alarms_open_worst_first")
        batch_op.drop_index("ix_alarms_cleared")
        batch_op.create_index(
            batch_op.f("ix_alarms_cleared_at_severity"), ["cleared_at", "severity"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alarms_alert_group_severity"), ["alert_group", "severity"], unique=False
        )
    _open_worst_first(["severity", "last_occurrence", "id"])
