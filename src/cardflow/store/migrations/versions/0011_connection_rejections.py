"""connections remember the last 401/403 a card call with them got

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("rejected_status_code", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("rejected_run_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("rejected_flow_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("rejected_card_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("rejected_card_id")
        batch.drop_column("rejected_flow_id")
        batch.drop_column("rejected_run_id")
        batch.drop_column("rejected_at")
        batch.drop_column("rejected_status_code")
