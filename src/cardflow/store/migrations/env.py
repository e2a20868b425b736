"""Alembic environment: runs on the connection cardflow hands over (see store.db)."""

from __future__ import annotations

from alembic import context

from cardflow.store.models import Base, cardflow_object

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - cardflow always passes its connection
    raise RuntimeError("cardflow migrations run through `cardflow db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=cardflow_object,
)
with context.begin_transaction():
    context.run_migrations()
