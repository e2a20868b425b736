"""single sign-on: users.oidc_subject; sso_logins (state, nonce and PKCE verifier of
sign-ins under way)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("oidc_subject", sa.String(length=255), nullable=True))
        batch.create_unique_constraint(batch.f("uq_users_oidc_subject"), ["oidc_subject"])
    op.create_table(
        "sso_logins",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_logins")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_sso_logins_state_hash")),
    )
    op.create_index(op.f("ix_sso_logins_expires_at"), "sso_logins", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sso_logins_expires_at"), table_name="sso_logins")
    op.drop_table("sso_logins")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(batch.f("uq_users_oidc_subject"), type_="unique")
        batch.drop_column("oidc_subject")
