"""Retention in managed vaults: operator policies, the vault trash, and unchanged jobs.

`backup_sets.operator_retention` holds an operator's policy for a set (NULL:
the service's default); `backup_sets.retention` keeps the policy the agent's
configuration asks for. `vault_trash` records every vault object retention
moved to the vault's trash, until it is purged or put back. Jobs gain the
final state `unchanged` (nothing changed since the last snapshot, so none was
written); the downgrade folds it into `succeeded`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATES = (
    "queued",
    "running",
    "waiting_for_network",
    "interrupted",
    "succeeded",
    "partial",
    "failed",
    "cancelled",
)
NEW_STATES = (*OLD_STATES, "unchanged")
TRASH_STATES = ("trashed", "purged", "restored")


def _check(column: str, states: Sequence[str]) -> str:
    values = ", ".join(f"'{state}'" for state in states)
    return f"{column} IN ({values})"


def _job_states(states: Sequence[str]) -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_jobs_state"), type_="check")
        batch_op.create_check_constraint(op.f("ck_jobs_state"), _check("state", states))


def upgrade() -> None:
    with op.batch_alter_table("backup_sets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "operator_retention",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                nullable=True,
            )
        )
    _job_states(NEW_STATES)
    op.create_table(
        "vault_trash",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("repository_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("trash_name", sa.String(length=400), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("trashed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purge_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(_check("state", TRASH_STATES), name=op.f("ck_vault_trash_state")),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_vault_trash_repository_id_repositories"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_vault_trash_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_trash")),
        sa.UniqueConstraint(
            "repository_id",
            "name",
            "trashed_at",
            name=op.f("uq_vault_trash_repository_id_name_trashed_at"),
        ),
    )
    with op.batch_alter_table("vault_trash", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_vault_trash_repository_id_state_purge_after"),
            ["repository_id", "state", "purge_after"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_vault_trash_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_table("vault_trash")
    jobs = sa.table("jobs", sa.column("state", sa.String()))
    op.execute(jobs.update().where(jobs.c.state == "unchanged").values(state="succeeded"))
    _job_states(OLD_STATES)
    with op.batch_alter_table("backup_sets", schema=None) as batch_op:
        batch_op.drop_column("operator_retention")
