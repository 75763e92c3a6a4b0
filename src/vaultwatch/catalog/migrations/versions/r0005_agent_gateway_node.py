"""The gateway node that received an agent's latest heartbeat (agents.gateway_node).

The operations center derives its topology from it: which agents sit behind
which gateway, so a gateway's outage explains its agents' silence.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 03:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("gateway_node", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("gateway_node")
