"""Alembic environment: always run with a connection handed in by detente.store.db."""

from __future__ import annotations

from alembic import context

from detente.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through detente.store.db.migrate()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
