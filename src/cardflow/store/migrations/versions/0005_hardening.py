"""hardening: connections bound to hosts, refresh in-flight marker, omitted run cards

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("allowed_hosts", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("connections") as batch:
        batch.alter_column("allowed_hosts", server_default=None)
    with op.batch_alter_table("connection_tokens") as batch:
        # The lease (a row lock that outlived a crashed holder) gives way to a lock that
        # dies with its process; what remains is a marker of a refresh in flight.
        batch.drop_column("lease_owner")
        batch.drop_column("lease_until")
        batch.add_column(sa.Column("refresh_owner", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("refresh_started_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("cards_omitted", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("cards_omitted")
    with op.batch_alter_table("connection_tokens") as batch:
        batch.drop_column("refresh_started_at")
        batch.drop_column("refresh_owner")
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(length=64), nullable=True))
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("allowed_hosts")
