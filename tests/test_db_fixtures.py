"""The database fixtures give fresh, empty, working databases on SQLite and PostgreSQL."""

from __future__ import annotations

import pathlib

import pytest
import sqlalchemy as sa

import db


def test_create_insert_read(backend: str, db_url_factory: db.NewDb) -> None:
    url = db_url_factory("roundtrip")
    assert sa.make_url(url).get_backend_name() == backend
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        notes = sa.Table(
            "notes",
            meta,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("body", sa.Text, nullable=False),
        )
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(notes.insert(), [{"body": "Меры доверия"}, {"body": "信任"}])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(notes.c.body).order_by(notes.c.id)).scalars().all()
            assert rows == ["Меры доверия", "信任"]
            if backend == "postgresql":
                version = conn.execute(sa.text("SHOW server_version_num")).scalar_one()
                assert int(version) >= 130000
    finally:
        engine.dispose()


def test_databases_are_fresh_and_separate(db_url_factory: db.NewDb) -> None:
    first, second = (sa.create_engine(db_url_factory(name)) for name in ("first", "second"))
    try:
        for engine in (first, second):
            assert sa.inspect(engine).get_table_names() == []
        with first.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        assert sa.inspect(first).get_table_names() == ["t"]
        assert sa.inspect(second).get_table_names() == []
    finally:
        first.dispose()
        second.dispose()


def test_bad_database_name_is_refused(db_url_factory: db.NewDb) -> None:
    with pytest.raises(ValueError, match="database name"):
        db_url_factory('x"; DROP DATABASE postgres; --')


@pytest.mark.postgres
def test_postgres_databases_are_unique_and_dropped(
    pg_admin_url: str, tmp_path: pathlib.Path
) -> None:
    with db.make_db_url("postgresql", tmp_path, pg_admin_url) as new_db:
        names = [sa.make_url(new_db("same")).database for _ in range(2)]
        assert names[0] != names[1]
        engine = sa.create_engine(new_db("open"))  # left connected: dropped WITH (FORCE)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            conn.commit()
    engine.dispose()
    with db.connect(db.psycopg_url(pg_admin_url)) as conn:
        cur = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 't\\_%'")
        assert cur.fetchone() == (0,)
