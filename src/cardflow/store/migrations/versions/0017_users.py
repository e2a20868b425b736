"""users and roles: tokens, sessions and login links belong to a user; invitations;
connections shared with roles or users; audit entries name the user

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    users = op.create_table(
        "users",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("user_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("role", sa.String(length=16), nullable=True))
    with op.batch_alter_table("web_sessions") as batch:
        batch.add_column(sa.Column("user_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("login_links") as batch:
        batch.add_column(sa.Column("user_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("invite_name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("invite_email", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("invite_role", sa.String(length=16), nullable=True))
    with op.batch_alter_table("connections") as batch:
        batch.add_column(
            sa.Column("shared_with", sa.JSON(), server_default='["everyone"]', nullable=False)
        )
    # Entries keep the user's id and name as they were (no foreign key: they outlive users).
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("user_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("user_name", sa.String(length=200), nullable=True))
        batch.create_index(batch.f("ix_audit_events_user_id"), ["user_id"], unique=False)

    # An install in use (any token, session or login link) gets its owner, "owner", who
    # holds everything there was: until now whoever logged in was the one administrator.
    bind = op.get_bind()
    in_use = any(
        bind.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None  # noqa: S608
        for table in ("api_tokens", "web_sessions", "login_links")
    )
    if in_use:
        owner_id = f"usr_{secrets.token_hex(8)}"
        op.bulk_insert(
            users,
            [
                {
                    "id": owner_id,
                    "name": "owner",
                    "email": None,
                    "role": "owner",
                    "created_at": datetime.now(UTC),
                }
            ],
        )
        for table in ("api_tokens", "web_sessions", "login_links"):
            bind.execute(
                sa.text(f"UPDATE {table} SET user_id = :owner"),  # noqa: S608
                {"owner": owner_id},
            )

    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("user_id", existing_type=sa.String(length=32), nullable=False)
        batch.create_index(batch.f("ix_api_tokens_user_id"), ["user_id"], unique=False)
        batch.create_foreign_key(
            batch.f("fk_api_tokens_user_id_users"),
            "users",
            ["user_id"],
            ["id"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("web_sessions") as batch:
        batch.alter_column("user_id", existing_type=sa.String(length=32), nullable=False)
        batch.create_index(batch.f("ix_web_sessions_user_id"), ["user_id"], unique=False)
        batch.create_foreign_key(
            batch.f("fk_web_sessions_user_id_users"),
            "users",
            ["user_id"],
            ["id"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("login_links") as batch:
        batch.create_index(batch.f("ix_login_links_user_id"), ["user_id"], unique=False)
        batch.create_foreign_key(
            batch.f("fk_login_links_user_id_users"),
            "users",
            ["user_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_index(batch.f("ix_audit_events_user_id"))
        batch.drop_column("user_name")
        batch.drop_column("user_id")
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("shared_with")
    with op.batch_alter_table("login_links") as batch:
        batch.drop_constraint(batch.f("fk_login_links_user_id_users"), type_="foreignkey")
        batch.drop_index(batch.f("ix_login_links_user_id"))
        batch.drop_column("invite_role")
        batch.drop_column("invite_email")
        batch.drop_column("invite_name")
        batch.drop_column("user_id")
    with op.batch_alter_table("web_sessions") as batch:
        batch.drop_constraint(batch.f("fk_web_sessions_user_id_users"), type_="foreignkey")
        batch.drop_index(batch.f("ix_web_sessions_user_id"))
        batch.drop_column("user_id")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(batch.f("fk_api_tokens_user_id_users"), type_="foreignkey")
        batch.drop_index(batch.f("ix_api_tokens_user_id"))
        batch.drop_column("role")
        batch.drop_column("user_id")
    op.drop_table("users")
