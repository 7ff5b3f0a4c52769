"""The migrations create exactly the tables schema.py declares (both backends)."""

from __future__ import annotations

from collections.abc import Callable

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from detente.store.db import migrate, open_engine
from detente.store.schema import metadata


def test_migrated_database_matches_the_schema(db_url_factory: Callable[[str], str]) -> None:
    engine = open_engine(db_url_factory("migrations"))
    try:
        migrate(engine)
        migrate(engine)  # idempotent
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], diff
    finally:
        engine.dispose()
