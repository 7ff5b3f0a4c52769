"""Persistence: SQLAlchemy 2 Core tables and Alembic migrations.

SQLite (a file, WAL, ``synchronous=FULL``) by default; PostgreSQL when the
database URL says so.  Nothing here decides anything: the node does; the
core checks.  SQLAlchemy errors are mapped to :class:`~detente.errors.StorageError`
at this boundary.
"""
