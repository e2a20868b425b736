"""the builder's testing of a flow: test data and each card's last result

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_test_states",
        sa.Column("flow_id", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["flows.id"],
            name=op.f("fk_flow_test_states_flow_id_flows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("flow_id", name=op.f("pk_flow_test_states")),
    )


def downgrade() -> None:
    op.drop_table("flow_test_states")
