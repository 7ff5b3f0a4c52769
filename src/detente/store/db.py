"""Opening the database: engines, pragmas, migrations, error mapping.

SQLite is opened in WAL mode with ``synchronous=FULL`` (every commit is on
disk before it returns — the receipt promises that) and a busy timeout so a
reader CLI and the serving node can share the file.  PostgreSQL URLs are
normalised to the psycopg 3 driver.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import SQLAlchemyError

from detente.errors import StorageError

__all__ = ["mapped_errors", "migrate", "normalise_url", "open_engine"]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` for the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling would defer BEGIN; SQLAlchemy's
    # documented recipe is to turn it off and emit BEGIN ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # IMMEDIATE: take the write lock at BEGIN, so two writers queue instead of
    # failing with "database is locked" half-way through a transaction.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin_deferred(conn: Any) -> None:
    # Readers take no lock: in WAL mode they read a snapshot while the writer writes.
    conn.exec_driver_sql("BEGIN")


def open_engine(url: str, *, reads_only: bool = False) -> Engine:
    """An engine for ``url`` with Détente's durability settings.

    A node keeps two: one for its writer (transactions take SQLite's write
    lock at BEGIN) and one for everything that only reads (they must not).
    """
    url = normalise_url(url)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(
                engine,
                "begin",
                _sqlite_begin_deferred if reads_only else _sqlite_begin_immediate,
            )
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
    except (SQLAlchemyError, ValueError) as exc:
        raise StorageError(f"cannot open database {url.split('@')[-1]}: {exc}") from exc
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with mapped_errors("migrating the database"), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def has_schema(engine: Engine) -> bool:
    with mapped_errors("inspecting the database"):
        return "node_info" in inspect(engine).get_table_names()


@contextlib.contextmanager
def mapped_errors(what: str) -> Iterator[None]:
    """Map SQLAlchemy failures to :class:`StorageError` naming the operation."""
    try:
        yield
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise StorageError(f"database error while {what}: {type(cause).__name__}") from exc
