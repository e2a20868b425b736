"""flow version history: every save of a flow keeps its document; runs record the version

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    versions = op.create_table(
        "flow_versions",
        sa.Column("flow_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=250), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["flows.id"],
            name=op.f("fk_flow_versions_flow_id_flows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("flow_id", "number", name=op.f("pk_flow_versions")),
    )
    with op.batch_alter_table("flows") as batch:
        batch.add_column(
            sa.Column("saved_version", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("flow_version", sa.Integer(), nullable=True))

    # Each existing flow's current document becomes its version 1.
    bind = op.get_bind()
    flows = sa.table(
        "flows",
        sa.column("id", sa.String),
        sa.column("document", sa.JSON),
        sa.column("updated_at", sa.DateTime(timezone=True)),
        sa.column("saved_version", sa.Integer),
    )
    rows = bind.execute(sa.select(flows.c.id, flows.c.document, flows.c.updated_at)).all()
    if rows:
        now = datetime.now(UTC)
        op.bulk_insert(
            versions,
            [
                {
                    "flow_id": row.id,
                    "number": 1,
                    "document": row.document,
                    "actor": "migration",
                    "note": "The flow as it was when version history began.",
                    "created_at": row.updated_at or now,
                }
                for row in rows
            ],
        )
        bind.execute(sa.update(flows).values(saved_version=1))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("flow_version")
    with op.batch_alter_table("flows") as batch:
        batch.drop_column("saved_version")
    op.drop_table("flow_versions")
