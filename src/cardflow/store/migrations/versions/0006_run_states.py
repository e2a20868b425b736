"""queued runs: their encrypted progress, run events, retries

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_states",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("state_enc", sa.LargeBinary(), nullable=True),
        sa.Column("state_key_id", sa.Integer(), nullable=True),
        sa.Column("next_card", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_states")),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("events", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("retry_of", sa.String(length=32), nullable=True))
        batch.create_index(batch.f("ix_runs_retry_of"), ["retry_of"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index(batch.f("ix_runs_retry_of"))
        batch.drop_column("retry_of")
        batch.drop_column("events")
    op.drop_table("run_states")
