"""Job states waiting_for_network and partial: a wider jobs.state and its CHECK constraint.

The downgrade folds the new states into the nearest old ones
(waiting_for_network -> interrupted, partial -> succeeded) before narrowing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 22:26:50.794093
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATES = ("queued", "running", "interrupted", "succeeded", "failed", "cancelled")
NEW_STATES = (
    "queued",
    "running",
    "waiting_for_network",
    "interrupted",
    "succeeded",
    "partial",
    "failed",
    "cancelled",
)
#: What the downgrade turns each new state into.
FOLDED = {"waiting_for_network": "interrupted", "partial": "succeeded"}


def _check(states: Sequence[str]) -> str:
    values = ", ".join(f"'{state}'" for state in states)
    return f"state IN ({values})"


def _replace_state_column(old_length: int, new_length: int, states: Sequence[str]) -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_jobs_state"), type_="check")
        batch_op.alter_column(
            "state",
            existing_type=sa.String(length=old_length),
            type_=sa.String(length=new_length),
            existing_nullable=False,
        )
        batch_op.create_check_constraint(op.f("ck_jobs_state"), _check(states))


def upgrade() -> None:
    _replace_state_column(11, 19, NEW_STATES)


def downgrade() -> None:
    jobs = sa.table("jobs", sa.column("state", sa.String()))
    for new, old in FOLDED.items():
        op.execute(jobs.update().where(jobs.c.state == new).values(state=old))
    _replace_state_column(19, 11, OLD_STATES)
