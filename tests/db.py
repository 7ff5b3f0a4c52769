"""Databases for the tests: SQLite files and a real PostgreSQL server.

PostgreSQL comes from ``DETENTE_TEST_PG_URL`` (``.ci/run`` sets it, after starting
a throw-away server with ``.ci/pg.sh``). Without it, if the PostgreSQL server
binaries are on this machine, :func:`start_cluster` starts a throw-away cluster
with that same script (unprivileged user, 127.0.0.1 only, temporary directory),
stopped and deleted at the end of the session. Otherwise the PostgreSQL tests
are skipped.
"""

from __future__ import annotations

import glob
import os
import pathlib
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL, make_url

PG_URL_ENV = "DETENTE_TEST_PG_URL"
PG_SH = pathlib.Path(__file__).resolve().parents[1] / ".ci" / "pg.sh"
BACKENDS = ("sqlite", "postgresql")

# A database name is t_<16 hex>_<name>; PostgreSQL keeps 63 bytes of a name.
_NAME = re.compile(r"[a-z0-9_]{1,40}")

NewDb = Callable[[str], str]


def pg_server_binaries() -> str | None:
    """The directory holding this machine's PostgreSQL server binaries, or None."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(re.sub(r"\D", "", pathlib.Path(p).parents[1].name) or 0),
    )
    if candidates:
        return str(pathlib.Path(candidates[-1]).parent)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return str(pathlib.Path(initdb).resolve().parent)
    return None


def psycopg_url(url: str) -> URL:
    """The URL as SQLAlchemy's psycopg 3 URL (``postgresql://`` means psycopg2 there)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"{PG_URL_ENV} is not a PostgreSQL URL: {parsed!r}")
    return parsed.set(drivername="postgresql+psycopg")


def connect(url: URL) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit psycopg connection to the database a SQLAlchemy URL names."""
    params = {k: v for k, v in url.query.items() if isinstance(v, str)}
    conninfo = make_conninfo(
        "",
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database,
        connect_timeout=10,
        **params,
    )
    return psycopg.connect(conninfo, autocommit=True)


@contextmanager
def start_cluster() -> Iterator[str]:
    """Starts a throw-away cluster with .ci/pg.sh; yields its admin URL; stops it."""
    env = dict(os.environ)
    env.pop("DETENTE_PG_DIR", None)
    started = subprocess.run(
        ["bash", str(PG_SH), "start"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    exported = dict(re.findall(r"^export (\w+)=(\S+)$", started.stdout, flags=re.MULTILINE))
    if started.returncode != 0 or set(exported) != {PG_URL_ENV, "DETENTE_PG_DIR"}:
        raise RuntimeError(
            f"could not start a PostgreSQL cluster with {PG_SH} "
            f"(exit {started.returncode}):\n{started.stdout}{started.stderr}"
        )
    try:
        yield exported[PG_URL_ENV]
    finally:
        subprocess.run(
            ["bash", str(PG_SH), "stop", exported["DETENTE_PG_DIR"]],
            capture_output=True,
            check=False,
        )


@dataclass
class DatabaseFactory:
    """Fresh, empty databases on one backend; :meth:`close` drops those it made."""

    backend: str
    directory: pathlib.Path
    admin_url: str | None = None
    created: list[str] = field(default_factory=list)

    def __call__(self, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError(f"database name must match {_NAME.pattern}: {name!r}")
        if self.backend == "sqlite":
            return f"sqlite:///{self.directory / name}.db"
        if self.backend != "postgresql":
            raise ValueError(f"unknown backend {self.backend!r}")
        if self.admin_url is None:
            raise ValueError("a PostgreSQL database needs the admin URL")
        admin = psycopg_url(self.admin_url)
        database = f"t_{secrets.token_hex(8)}_{name}"
        with connect(admin) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        self.created.append(database)
        return admin.set(database=database).render_as_string(hide_password=False)

    def close(self) -> None:
        if not self.created or self.admin_url is None:
            return
        with connect(psycopg_url(self.admin_url)) as conn:
            while self.created:
                database = self.created.pop()
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )


@contextmanager
def make_db_url(
    backend: str, directory: pathlib.Path, admin_url: str | None = None
) -> Iterator[NewDb]:
    """Yields ``new_db(name) -> url``; the PostgreSQL databases it made are dropped after."""
    factory = DatabaseFactory(backend, directory, admin_url)
    try:
        yield factory
    finally:
        factory.close()
