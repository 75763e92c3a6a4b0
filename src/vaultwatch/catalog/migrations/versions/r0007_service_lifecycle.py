"""Service lifecycle: suspended and deleted tenants, revoked enrollment tokens, pending credentials.

`tenants.suspended_at` refuses a tenant's uploads until it is resumed;
`tenants.deleted_at` / `purge_after` / `purged_at` keep a deleted tenant's
data for a grace period before housekeeping removes it.
`enrollment_tokens.revoked_at` withdraws a token before it is used, and
`agent_credentials.pending` marks a rotated-in credential that becomes the
only one the first time the agent uses it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("suspension_reason", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("purge_after", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("enrollment_tokens") as batch:
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("agent_credentials") as batch:
        batch.add_column(
            sa.Column("pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("agent_credentials") as batch:
        batch.drop_column("pending")
    with op.batch_alter_table("enrollment_tokens") as batch:
        batch.drop_column("revoked_at")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("purged_at")
        batch.drop_column("purge_after")
        batch.drop_column("deleted_at")
        batch.drop_column("suspension_reason")
        batch.drop_column("suspended_at")
