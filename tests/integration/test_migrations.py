"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cardflow.app import Cardflow
from cardflow.store.models import Base, cardflow_object


def test_models_match_migrations(cf: Cardflow) -> None:
    with cf.db.engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"include_name": cardflow_object}),
            Base.metadata,
        )
    assert diff == []


def test_upgrade_is_idempotent(cf: Cardflow) -> None:
    cf.db.upgrade()
    cf.db.upgrade()
