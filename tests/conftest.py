"""Shared fixtures: parties with real keys and a signed agreement (no I/O); databases."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

import db
from detente.core.agreement import Agreement, AgreementSet
from detente.core.keys import PartyKeys
from parties import Party, make_agreement, make_party

# Key generation (ML-DSA, ML-KEM) is the slow part: share one set per session.
_KEYS = {name: PartyKeys.generate() for name in ("US-CISA", "RU-NCCC", "CN-CNCERT", "IN-CERTIN")}


@pytest.fixture(scope="session")
def us() -> Party:
    return make_party("US-CISA", _KEYS["US-CISA"])


@pytest.fixture(scope="session")
def ru() -> Party:
    return make_party("RU-NCCC", _KEYS["RU-NCCC"])


@pytest.fixture(scope="session")
def cn() -> Party:
    return make_party("CN-CNCERT", _KEYS["CN-CNCERT"])


@pytest.fixture(scope="session")
def agreement(us: Party, ru: Party) -> Agreement:
    return make_agreement([us, ru])


@pytest.fixture
def trust(agreement: Agreement) -> AgreementSet:
    return AgreementSet([agreement])


# Databases (tests/db.py): SQLite files, and a real PostgreSQL server from
# DETENTE_TEST_PG_URL or, failing that, a throw-away cluster started here.


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser URL to a PostgreSQL server, or the test is skipped."""
    url = os.environ.get(db.PG_URL_ENV)
    if url:
        yield db.psycopg_url(url).render_as_string(hide_password=False)
        return
    if db.pg_server_binaries() is None:
        pytest.skip(
            f"PostgreSQL not available: {db.PG_URL_ENV} is unset and no server binaries "
            "(/usr/lib/postgresql/*/bin/initdb, initdb on PATH) are installed"
        )
    with db.start_cluster() as started:
        yield started


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    name: str = request.param
    return name


@pytest.fixture
def db_url_factory(
    backend: str, tmp_path: pathlib.Path, request: pytest.FixtureRequest
) -> Iterator[db.NewDb]:
    """``new_db(name) -> url``: a fresh, empty database on ``backend``, dropped after."""
    admin = request.getfixturevalue("pg_admin_url") if backend == "postgresql" else None
    with db.make_db_url(backend, tmp_path, admin) as new_db:
        yield new_db
